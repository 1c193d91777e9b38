"""Loading from a real sqlite MLflow store written in the data contract, the cache,
clear errors, and `python -m analysis.report` end to end (in-process)."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import load, report
from analysis.load import NoRunsError, load_frames
from analysis.sections import SECTIONS, glance

# MLflow's own sqlalchemy models emit this when the store is opened; it is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def by_config(runs):
    return runs.set_index(["activation", "init", "depth", "optimizer", "seed"]).sort_index()


def test_default_selection_is_the_latest_sweep(mlflow_store):
    frames = load_frames(mlflow_store["experiment"], tracking_uri=mlflow_store["uri"])
    expected, mapping, parent_id = mlflow_store["sweeps"]["sweep-b"]
    assert frames.sweep == "sweep-b" and frames.parent_run_id == parent_id
    assert sorted(frames.runs["run_id"]) == sorted(mapping.values())
    assert frames.experiment == mlflow_store["experiment"] and frames.notes == []


def test_runs_table_has_the_contract_columns_and_types(mlflow_store):
    frames = load_frames(mlflow_store["experiment"], sweep="sweep-b", tracking_uri=mlflow_store["uri"])
    runs = frames.runs
    assert list(runs.columns) == list(load.RUN_COLUMNS)
    for column in ("depth", "width", "seed"):
        assert runs[column].dtype == np.int64
    assert runs["lr"].dtype == np.float64
    expected, _, _ = mlflow_store["sweeps"]["sweep-b"]
    got, want = by_config(runs), by_config(expected.runs)
    assert list(got.index) == list(want.index)
    for column in ("outcome", "status", "width", "dataset", "lr"):
        assert list(got[column]) == list(want[column]), column
    for column in ("loss/train", "acc/val", "diverged_step"):
        np.testing.assert_allclose(got[column].to_numpy(float), want[column].to_numpy(float))
    diverged = runs[runs["outcome"] == "diverged"]
    assert len(diverged) == 1 and np.isfinite(diverged["diverged_step"]).all()


def test_artifact_tables_match_what_was_logged(mlflow_store):
    frames = load_frames(mlflow_store["experiment"], sweep="sweep-b", tracking_uri=mlflow_store["uri"])
    expected, mapping, _ = mlflow_store["sweeps"]["sweep-b"]
    for name, columns in (("layer_stats", load.LAYER_STATS_COLUMNS), ("histograms", load.HISTOGRAM_COLUMNS),
                          ("scalars", load.SCALAR_COLUMNS)):
        got = getattr(frames, name)
        assert list(got.columns) == list(columns)
        assert {str(dtype) for dtype in got.dtypes[["step"]]} == {"int64"}
        for column in (name for name, dtype in columns.items() if dtype == "category"):
            categories = list(got[column].cat.categories)  # sorted: groups come out in string order
            assert categories == sorted(categories) and set(categories) == set(got[column].astype(str))
        want = getattr(expected, name).assign(run_id=lambda f: f["run_id"].astype(str).map(mapping)).astype(columns)
        keys = [column for column in columns if column not in ("value", "count", "left", "right")]
        pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True),
                                      want.sort_values(keys).reset_index(drop=True), check_dtype=False)


def test_a_sweep_by_id_and_all_runs(mlflow_store):
    older = load_frames(mlflow_store["experiment"], sweep="sweep-a", tracking_uri=mlflow_store["uri"])
    everything = load_frames(mlflow_store["experiment"], all_runs=True, tracking_uri=mlflow_store["uri"])
    assert len(older.runs) == len(mlflow_store["sweeps"]["sweep-a"][0].runs)
    assert set(older.runs["depth"]) == {2}
    assert len(everything.runs) == sum(len(sweep[0].runs) for sweep in mlflow_store["sweeps"].values())
    assert everything.sweep == "" and everything.parent_run_id == ""


def test_the_latest_sweep_of_a_study(mlflow_store):
    frames = load_frames(mlflow_store["experiment"], study="alpha", tracking_uri=mlflow_store["uri"])
    assert frames.sweep == "sweep-a" and frames.parent_run_id == mlflow_store["sweeps"]["sweep-a"][2]
    with pytest.raises(NoRunsError, match=r"no runs of study 'gamma' .*\(studies: alpha, beta\)"):
        load_frames(mlflow_store["experiment"], study="gamma", tracking_uri=mlflow_store["uri"])


@pytest.mark.parametrize("kwargs, message", [
    ({"experiment": "empty"}, "has no job runs"),
    ({"experiment": "no-such-experiment"}, "no MLflow experiment named 'no-such-experiment'"),
    ({"experiment": "gradpath-test", "sweep": "no-such-sweep"}, "sweeps: sweep-a, sweep-b"),
])
def test_nothing_to_load_is_a_clear_error(mlflow_store, kwargs, message):
    with pytest.raises(NoRunsError, match=message) as error:
        load_frames(tracking_uri=mlflow_store["uri"], **kwargs)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


def test_a_missing_store_is_a_clear_error_and_is_not_created(tmp_path):
    db = tmp_path / "missing.db"
    with pytest.raises(NoRunsError, match="no MLflow store"):
        load_frames(tracking_uri=f"sqlite:///{db}")
    assert not db.exists()


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unusable_store_is_one_line_from_the_training_checks(tmp_path):
    from experiments.tracking import StoreError
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database " * 400)
    with pytest.raises(StoreError, match=r"corrupt\.db is not a usable sqlite database \(file is not a database\)$"):
        load.open_client(f"sqlite:///{corrupt}")
    uri = f"http://127.0.0.1:{free_port()}"        # nothing listens there
    with pytest.raises(StoreError, match=rf"^tracking server {uri} is unreachable \(.*refused.*\)$"):
        load_frames(tracking_uri=uri)


def test_retried_and_incomplete_runs(mlflow_store):
    """A killed attempt superseded by a finished one counts once; a failed run
    without artifacts is kept with its status, and the missing files are noted."""
    from mlflow.entities import Param
    client = mlflow_store["client"]
    experiment_id = client.create_experiment("retries", artifact_location=str(mlflow_store["root"] / "retries"))
    tags = {"activation": "tanh", "init": "uniform", "optimizer": "sgd", "depth": "3", "width": "8",
            "dataset": "moons", "seed": "0", "role": "job", "sweep": "sweep-retry", "config_hash": "h1"}
    killed = client.create_run(experiment_id, run_name="attempt-1", tags=tags)
    client.set_terminated(killed.info.run_id, "KILLED")
    failed = client.create_run(experiment_id, run_name="attempt-2", tags=tags)
    client.log_batch(failed.info.run_id, params=[Param("optimizer.lr", "0.1")])
    client.set_terminated(failed.info.run_id, "FAILED")
    frames = load_frames("retries", tracking_uri=mlflow_store["uri"])   # no parent run: all job runs
    assert list(frames.runs["run_id"]) == [failed.info.run_id]   # the later attempt
    assert frames.runs.loc[0, "status"] == "FAILED" and frames.runs.loc[0, "outcome"] == "unknown"
    assert frames.runs.loc[0, "lr"] == 0.1
    assert frames.layer_stats.empty
    assert "1 earlier attempt(s) of re-run configurations ignored" in frames.notes
    assert "1 run(s) have no layer_stats.parquet" in frames.notes
    assert any(note.startswith("no sweep parent run") for note in frames.notes)


def test_a_sweep_is_its_whole_grid_whichever_sweep_ran_each_point(mlflow_store):
    """A sweep skips the grid points already FINISHED (their runs carry the sweep tag of the sweep
    that ran them): its report covers its parent's grid record, with the latest FINISHED run of each
    point from any sweep; a sweep whose points were all done still has all its runs."""
    from synthetic_runs import make_frames, write_mlflow_runs
    client, root = mlflow_store["client"], mlflow_store["root"]
    experiment_id = client.create_experiment("grids", artifact_location=str(root / "grids"))
    grid = {"activations": ("relu", "sigmoid"), "inits": ("uniform", "xavier_uniform"), "depths": (2,),
            "optimizers": ("sgd",), "diverged": (), "nan_run": None}
    everything = make_frames(**grid)
    hashes = list(everything.runs["run_id"])   # the synthetic writer's config_hash is the run_id
    relu = [h for h in hashes if h.startswith("relu")]
    relu_uniform = "relu-uniform-d2-sgd-s0"

    def part(names):
        return make_frames(**{**grid, "activations": names})

    def only(frames, run_ids):
        return replace(frames, runs=frames.runs[frames.runs["run_id"].isin(run_ids)])

    first, _ = write_mlflow_runs(part(("relu",)), client, experiment_id, root / "g1", sweep="g1", grid=relu)
    # g2 extends the grid by sigmoid and a point never run, and re-runs relu + uniform (forced)
    second, _ = write_mlflow_runs(only(everything, [relu_uniform] + hashes[2:]), client, experiment_id,
                                  root / "g2", sweep="g2", grid=hashes + ["never-run"])
    # g3 is the relu sub-grid again: every point already FINISHED, no job run of its own
    _, g3_parent = write_mlflow_runs(only(everything, []), client, experiment_id, root / "g3", sweep="g3", grid=relu)

    extended = load_frames("grids", sweep="g2", tracking_uri=mlflow_store["uri"])
    assert sorted(extended.runs["run_id"]) == sorted([first["relu-xavier_uniform-d2-sgd-s0"], *second.values()])
    assert sorted(extended.runs["sweep"]) == ["g1", "g2", "g2", "g2"]
    assert "1 earlier attempt(s) of re-run configurations ignored" in extended.notes   # g1's relu + uniform
    assert "1 of the 5 grid points have no job run" in extended.notes
    done = load_frames("grids", tracking_uri=mlflow_store["uri"])                      # the latest sweep: g3
    assert done.sweep == "g3" and done.parent_run_id == g3_parent
    assert sorted(done.runs["run_id"]) == sorted([first["relu-xavier_uniform-d2-sgd-s0"], second[relu_uniform]])
    assert glance.at_a_glance(done)[0].endswith(
        "; 2 of the 2 runs come from other sweeps (`g1`: 1, `g2`: 1).")
    # A parent without a grid record (logged before it existed): the runs tagged with its sweep.
    old = load_frames(mlflow_store["experiment"], sweep="sweep-a", tracking_uri=mlflow_store["uri"])
    assert sorted(old.runs["run_id"]) == sorted(mlflow_store["sweeps"]["sweep-a"][1].values())


def test_runs_that_differ_only_in_an_unnamed_param_are_told_apart(mlflow_store):
    """Runs named alike (lr is not in the run name) get a variant label from the params that vary
    among runs of the same standard axes; params that follow an axis (sgd's momentum) do not count."""
    from synthetic_runs import concatenated, make_frames, with_lr, write_mlflow_runs
    client, root = mlflow_store["client"], mlflow_store["root"]
    experiment_id = client.create_experiment("lrs", artifact_location=str(root / "lrs"))
    grid = {"activations": ("relu", "tanh"), "inits": ("he_uniform",), "depths": (2,), "optimizers": ("adam", "sgd"),
            "diverged": (), "nan_run": None}
    both = concatenated(with_lr(make_frames(**grid), 0.05, "-a"), with_lr(make_frames(**grid), 50, "-b"))
    write_mlflow_runs(both, client, experiment_id, root / "lrs-work", sweep="lrs")
    frames = load_frames("lrs", tracking_uri=mlflow_store["uri"])
    assert frames.varying == {"optimizer.lr": ["0.05", "50.0"]}
    assert frames.runs["run_name"].nunique() == 4 and len(frames.runs) == 8
    assert dict(zip(frames.runs["lr"], frames.runs["variant"])) == {0.05: "optimizer.lr=0.05", 50.0: "optimizer.lr=50.0"}
    single = load_frames(mlflow_store["experiment"], sweep="sweep-b", tracking_uri=mlflow_store["uri"])
    assert single.varying == {} and set(single.runs["variant"]) == {""}


def test_varying_params_are_those_that_vary_within_the_standard_axes():
    runs = pd.DataFrame({"run_id": list("abcd"), "activation": "relu", "init": "normal", "optimizer": ["sgd", "sgd", "adam", "adam"],
                         "depth": 5, "seed": 0, "dataset": "digits"})
    params = {"a": {"optimizer.lr": "0.1", "optimizer.momentum": "0.9", "init.sigma_w": "2", "tracking.uri": "x"},
              "b": {"optimizer.lr": "0.1", "optimizer.momentum": "0.9", "init.sigma_w": "12", "tracking.uri": "y"},
              "c": {"optimizer.lr": "0.001", "init.sigma_w": "2", "optimizer.betas": "[0.9, 0.999]"},
              "d": {"optimizer.lr": "0.001", "init.sigma_w": "12", "optimizer.betas": "[0.5, 0.999]"}}
    assert load.varying_params(runs, params) == {"init.sigma_w": ["2", "12"],
                                                 "optimizer.betas": ["-", "[0.5, 0.999]", "[0.9, 0.999]"]}
    labelled, _ = load.with_variants(runs, params)
    assert list(labelled["variant"]) == ["init.sigma_w=2, optimizer.betas=-", "init.sigma_w=12, optimizer.betas=-",
                                         "init.sigma_w=2, optimizer.betas=[0.9, 0.999]",
                                         "init.sigma_w=12, optimizer.betas=[0.5, 0.999]"]


def test_local_artifact_paths():
    assert load.local_artifact_dir("file:///tmp/a%20b/artifacts") == Path("/tmp/a b/artifacts")
    assert load.local_artifact_dir("/tmp/x/artifacts") == Path("/tmp/x/artifacts")
    assert load.local_artifact_dir("mlflow-artifacts:/1/abc/artifacts") is None
    assert load.local_artifact_dir("s3://bucket/x") is None


# --- the command line, in-process ------------------------------------------------

def test_report_command_writes_everything_and_logs_to_the_parent_run(mlflow_store, tmp_path, capsys):
    out = tmp_path / "reports"
    status = report.main(["--experiment", mlflow_store["experiment"], "--tracking-uri", mlflow_store["uri"],
                          "--out", str(out), "--jobs", "2"])
    assert status == 0
    names = [section.name for section in SECTIONS]
    for name in names:
        assert (out / "figures" / f"{name}.png").exists() and (out / "figures" / f"{name}.svg").exists()
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == len(mlflow_store["sweeps"]["sweep-b"][0].runs)
    markdown = (out / "report.md").read_text()
    assert "sweep `sweep-b`" in markdown and "1 of 8 runs diverged" in markdown
    assert "report of 8 runs" in capsys.readouterr().out
    client = mlflow_store["client"]
    parent_id = mlflow_store["sweeps"]["sweep-b"][2]
    logged = {artifact.path for artifact in client.list_artifacts(parent_id, "report")}
    assert {"report/report.md", "report/report.html", "report/summary.csv", "report/figures"} <= logged
    assert len(client.list_artifacts(parent_id, "report/figures")) == 2 * len(names)
    # The parent is the front page: the at-a-glance section as its description, headline metrics,
    # and the experiment's description names it.
    parent = client.get_run(parent_id)
    note = parent.data.tags["mlflow.note.content"]
    assert "### At a glance" in note and "(outcome tag: 7 ok, 1 diverged)." in note
    assert (f"(#/experiments/{mlflow_store['experiment_id']}/runs/{parent_id}/artifacts/report/report.html"
            "?workflowType=machine_learning)") in note
    assert parent.data.metrics["runs"] == 8 and parent.data.metrics["runs_diverged"] == 1
    described = client.get_experiment(mlflow_store["experiment_id"]).tags["mlflow.note.content"]
    assert "`sweep-b`" in described and f"runs/{parent_id}?workflowType=machine_learning)" in described


def test_runs_without_a_sweep_log_their_report_to_one_report_run(mlflow_store, tmp_path):
    for name in ("figures/a.png", "report.md", "report.html", "summary.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    frames = load_frames(mlflow_store["experiment"], all_runs=True, tracking_uri=mlflow_store["uri"])
    client = mlflow_store["client"]
    run_id = report.log_report_to_mlflow(frames, tmp_path, [])
    found = client.search_runs([mlflow_store["experiment_id"]], "tags.role = 'report'")
    assert [run.info.run_id for run in found] == [run_id] and found[0].info.run_name == "report"
    assert {artifact.path for artifact in client.list_artifacts(run_id, "report")} == {
        "report/figures", "report/report.md", "report/report.html", "report/summary.csv"}
    assert report.log_report_to_mlflow(frames, tmp_path, []) == run_id      # reused, not duplicated
    assert len(client.search_runs([mlflow_store["experiment_id"]], "tags.role = 'report'")) == 1


def test_report_command_for_a_study_writes_under_its_name(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "DEFAULT_OUT", tmp_path)
    monkeypatch.setattr(report, "build_report", lambda frames, out, jobs=None, study=None: out.mkdir(parents=True, exist_ok=True))
    arguments = ["--experiment", mlflow_store["experiment"], "--tracking-uri", mlflow_store["uri"], "--no-log"]
    assert report.main(arguments + ["--study", "alpha"]) == 0
    assert (tmp_path / "alpha").is_dir()


def test_a_sweep_id_with_a_quote_is_a_clear_error(mlflow_store, tmp_path, capsys):
    status = report.main(["--experiment", mlflow_store["experiment"], "--tracking-uri", mlflow_store["uri"],
                          "--sweep", "it's", "--out", str(tmp_path)])
    assert status == 2 and "single quote" in capsys.readouterr().err


def test_report_command_on_an_empty_experiment_prints_one_line(mlflow_store, tmp_path, capsys):
    status = report.main(["--experiment", "empty", "--tracking-uri", mlflow_store["uri"], "--out", str(tmp_path)])
    assert status == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "has no job runs" in error
    assert not (tmp_path / "report.md").exists()


def test_the_latest_sweep_is_the_latest_launched(tmp_path):
    """A grid run again reuses its parent run, whose start time is that of its first launch: the
    latest sweep is the parent launched last (its launched tag), then, for parents logged before
    that tag, the latest started."""
    from mlflow.tracking import MlflowClient

    from experiments import record
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))

    def parent(name, **tags):
        return client.create_run(exp, run_name=name, tags={"role": "parent", "sweep": name, **tags}).info.run_id
    untagged = parent("untagged-old")
    assert load.latest_parent_run(client, exp).info.run_id == untagged
    newer_untagged = parent("untagged-new")
    assert load.latest_parent_run(client, exp).info.run_id == newer_untagged
    first = parent("first", **{record.LAUNCHED_TAG: "1700000000000"})
    second = parent("second", **{record.LAUNCHED_TAG: "1700000005000"})
    assert load.latest_parent_run(client, exp).info.run_id == second
    client.set_tag(first, record.LAUNCHED_TAG, "1700000009000")  # the first grid, launched again
    assert load.latest_parent_run(client, exp).info.run_id == first
    assert load.latest_parent_run(client, exp, sweep="second").info.run_id == second
