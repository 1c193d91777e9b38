"""End to end: the Hydra entry point as a user runs it, into a temporary sqlite store."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments import record
from nncore import STATS, diagnosis

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_cli(tmp_path, *overrides, env=None):
    cmd = [sys.executable, str(REPO / "experiments" / "train.py"), *overrides,
           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
           f"hydra.sweep.dir={tmp_path}/multirun", f"hydra.run.dir={tmp_path}/outputs"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=full_env)


def client_for(tmp_path):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")


def job_runs(client):
    exp = client.get_experiment_by_name("gradpath")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string="tags.role = 'job'", max_results=1000)


GRID = ["-m", "activation=tanh,relu", "init=uniform,he_uniform", "model.depth=3", "model.width=16",
        "train.epochs=1", "train.batch_size=128", "train.log_every=5", "train.probe_size=64"]


def test_tiny_multirun_logs_everything_and_resumes(tmp_path):
    proc = run_cli(tmp_path, *GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = client_for(tmp_path)
    runs = job_runs(client)
    assert len(runs) == 4
    names = {r.info.run_name for r in runs}
    assert names == {f"{a}-{i}-d3-sgd-s0" for a in ("tanh", "relu") for i in ("uniform", "he_uniform")}
    parents = client.search_runs([runs[0].info.experiment_id], filter_string="tags.role = 'parent'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    for run in runs:
        assert run.info.status == "FINISHED"
        tags, params = run.data.tags, run.data.params
        for key in ("activation", "init", "optimizer", "depth", "width", "dataset", "seed", "config_hash"):
            assert key in tags
        assert tags["outcome"] == "ok" and tags["depth"] == "3" and tags["dataset"] == "digits"
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        # the checkout's commit, as git itself reports it (no tag outside a git checkout)
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert tags.get("mlflow.source.git.commit") == (head if len(head) == 40 else None)
        assert params["model.depth"] == "3" and params["model.width"] == "16" and params["optimizer.name"] == "sgd"
        stats = pd.read_parquet(client.download_artifacts(run.info.run_id, "layer_stats.parquet", str(tmp_path)))
        for layer in (1, 4):  # the first and the output layer's gradient norm over training, in log10
            history = client.get_metric_history(run.info.run_id, f"log10_grad_norm/layer_{layer:02d}")
            assert sorted(m.step for m in history) == [0, 5, 10, 12]  # 1437 examples / 128 = 12 steps
            want = stats[(stats.stat == "grad_norm") & (stats.layer == layer)].set_index("step")["value"]
            for m in history:
                assert m.value == pytest.approx(math.log10(want[m.step]), rel=1e-12)
        assert tags["series.skipped"] == "0"
        assert not any(k.startswith(("log10_grad_norm/layer_02", "log10_grad_norm/layer_03", "grad_norm/layer",
                                     "act_var/")) for k in run.data.metrics)
        for key in ("loss/train", "loss/val", "acc/train", "acc/val", "grad_norm/probe_batch"):
            assert key in run.data.metrics
        assert {run.data.metrics[k] for k in ("depth", "width", "seed")} == {3.0, 16.0, 0.0}
        # The gradient-norm profile at init, step = layer, against layer_stats.parquet (below).
        profile = client.get_metric_history(run.info.run_id, "profile_init/log10_grad_norm")
        assert sorted(m.step for m in profile) == [1, 2, 3, 4]
        assert not any(k.startswith(("data.noise", "data.teacher_depth", "optimizer.betas")) for k in params)
        assert all(v != "None" for v in params.values())
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"layer_stats.parquet", "histograms.parquet", "scalars.parquet", "config.yaml",
                "overrides.yaml", "diagnosis.parquet"} <= artifacts
        flags = pd.read_parquet(client.download_artifacts(run.info.run_id, "diagnosis.parquet",
                                                          str(tmp_path / run.info.run_id)))
        assert list(flags.columns) == ["step", "layer", "flag", "raised"]
        # steps 0 and 12 x 3 hidden layers x (network and budget) flags
        assert len(flags) == 2 * 3 * (len(diagnosis.FLAGS) + len(diagnosis.BUDGET_FLAGS))
        for step, when in ((0, "init"), (12, "final")):
            for kind, names in (("pathology", diagnosis.FLAGS), ("budget", diagnosis.BUDGET_FLAGS)):
                raised = sorted(set(flags[(flags.step == step) & flags.raised & flags.flag.isin(names)].flag))
                assert tags[f"{kind}_{when}"] == (",".join(raised) or "none")
        assert tags["trainability"] in diagnosis.TRAINABILITY
        assert 0.09 < float(tags["majority_rate"]) < 0.11       # digits' stratified validation split
        local = client.download_artifacts(run.info.run_id, "layer_stats.parquet", str(tmp_path / run.info.run_id))
        stats = pd.read_parquet(local)
        assert list(stats.columns) == ["step", "layer", "stat", "value"]
        # 4 probed steps x 4 layers x every statistic, and the Jacobian probe's per-layer statistic at the first
        # and last step
        assert len(stats) == 4 * 4 * len(STATS) + 2 * 4
        assert set(stats.stat) == set(STATS) | {record.LAYER_JACOBIAN_STAT}
        assert set(stats.layer) == {1, 2, 3, 4}
        init = stats[(stats.step == 0) & (stats.stat == "grad_norm")].set_index("layer").value
        assert {m.step: m.value for m in profile} == pytest.approx({k: math.log10(v) for k, v in init.items()})
        hist = pd.read_parquet(client.download_artifacts(run.info.run_id, "histograms.parquet",
                                                         str(tmp_path / run.info.run_id)))
        assert {0, 12} <= set(hist.step)
        assert set(hist.kind) == {"act", "delta", "weight_grad", record.JACOBIAN_HISTOGRAM}
        assert (hist.groupby(["step", "layer", "kind"]).size() == 64).all()

    # the report reads the job's verdicts; its recomputation for runs logged before them (from the
    # logged statistics) agrees with the job on the network's flags
    from analysis.diagnosis import pathologies, recomputed_flags, with_diagnosis
    from analysis.load import load_frames
    from experiments.record import VERDICT_TAGS
    frames = with_diagnosis(load_frames(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"))
    judged = frames.runs.set_index("run_name")
    recomputed = pathologies(recomputed_flags(frames.layer_stats, frames.runs["run_id"]))
    for run in runs:
        for tag in VERDICT_TAGS:
            assert judged.loc[run.info.run_name, tag] == run.data.tags[tag], (run.info.run_name, tag)
        for tag in ("pathology_init", "pathology_final"):
            assert recomputed.loc[run.info.run_id, tag] == run.data.tags[tag], (run.info.run_name, tag)
    assert not any("logged before" in note for note in frames.notes)

    again = run_cli(tmp_path, *GRID)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 skipped" in again.stderr
    assert len(job_runs(client)) == 4
    # A sub-grid whose points the first sweep ran: nothing to train, and its report has both runs
    # (selected by the grid record of its parent, not by the sweep tag of the runs).
    sub = run_cli(tmp_path, "-m", "activation=tanh", *GRID[2:])
    assert sub.returncode == 0 and "2 skipped" in sub.stderr, sub.stderr[-2000:]
    frames = load_frames(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    first_sweep = runs[0].data.tags["sweep"]
    assert frames.sweep not in ("", first_sweep) and set(frames.runs["sweep"]) == {first_sweep}
    assert sorted(frames.runs["run_name"]) == ["tanh-he_uniform-d3-sgd-s0", "tanh-uniform-d3-sgd-s0"]


def test_diverging_run_is_a_result(tmp_path):
    proc = run_cli(tmp_path, "activation=relu", "init=normal", "init.sigma_w=10", "model.depth=20",
                   "optimizer=sgd", "optimizer.lr=1", "train.epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (run,) = job_runs(client_for(tmp_path))
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == "diverged" and run.data.tags["trainability"] == "diverged"
    assert run.data.metrics["diverged_step"] >= 0


@pytest.mark.parametrize("override,needle", [
    ("model.depth=0", "model.depth"), ("model.depth=abc", "model.depth"), ("activation=nope", "activation"),
    ("model.nope=1", "nope"), ("optimizer.lr=-1", "optimizer.lr"), ("model.dropout=1.5", "model.dropout"),
    ("model.norm=group", "model.norm"), ("model.residual=maybe", "model.residual"),
    ("model.residual_scale=0", "model.residual_scale"),
])
def test_invalid_override_exits_nonzero_with_one_line_and_no_run(tmp_path, override, needle):
    proc = run_cli(tmp_path, "-m", "activation=tanh,relu", override)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "mlflow.db").exists()  # validation happens before the store is opened
    assert not (tmp_path / "multirun").exists()


def test_tags_and_summary_agree_on_a_sweep_of_four_rules_and_a_diverging_run(tmp_path):
    """The job's verdicts are the report's: on a real sweep under sgd, momentum, adagrad and adadelta
    plus a diverging run, summary.csv carries every run's verdict tags unchanged, and the runs that
    start from the same weights (same init and seed) share one pathology_init."""
    from experiments.record import VERDICT_TAGS
    grid = run_cli(tmp_path, "-m", "activation=relu", "init=uniform,he_uniform", "model.depth=3", "model.width=16",
                   "optimizer=sgd,momentum,adagrad,adadelta", "train.epochs=1", "train.batch_size=256",
                   "train.log_every=5", "train.probe_size=64")
    assert grid.returncode == 0, grid.stderr[-3000:]
    diverging = run_cli(tmp_path, "activation=relu", "init=normal", "init.sigma_w=10", "model.depth=20",
                        "optimizer=sgd", "optimizer.lr=1", "train.epochs=1", "train.batch_size=256")
    assert diverging.returncode == 0, diverging.stderr[-3000:]
    out = tmp_path / "report"
    report = subprocess.run([sys.executable, "-m", "analysis.report", "--all-runs", "--no-log", "--out", str(out),
                             "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert report.returncode == 0, report.stderr[-3000:]
    summary = pd.read_csv(out / "summary.csv", dtype=str, keep_default_na=False).set_index("run_id")
    runs = job_runs(client_for(tmp_path))
    assert len(runs) == 9 and set(summary.index) == {run.info.run_id for run in runs}
    for run in runs:
        for tag in VERDICT_TAGS:
            assert summary.loc[run.info.run_id, tag] == run.data.tags[tag], (run.info.run_name, tag)
    by_init = {}
    for run in runs:
        by_init.setdefault((run.data.tags["init"], run.data.tags["depth"]), set()).add(run.data.tags["pathology_init"])
    assert all(len(verdicts) == 1 for verdicts in by_init.values()), by_init
    assert {run.data.tags["trainability"] for run in runs if run.data.tags["init"] == "normal"} == {"diverged"}
    assert "logged before" not in (out / "report.md").read_text()


# ------------------------------------------------------------------ recurrent nets
@pytest.mark.parametrize("overrides, needle", [
    (("arch=lstm", "data=digits"), "model.cell: arch=lstm reads sequences, but data=digits gives vectors"),
    (("data=adding",), "data.name: data=adding gives sequences"),
    (("arch=rnn", "data=adding", "train.loss=cross_entropy"), "train.loss: data=adding is a regression"),
])
def test_recurrent_arch_and_data_mismatch_is_one_line_before_any_run(tmp_path, overrides, needle):
    for argv in (overrides, ("-m", "seed=0,1", *overrides)):   # a single run and a sweep's pre-flight
        proc = run_cli(tmp_path, *argv)
        assert proc.returncode != 0
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], proc.stderr
        assert not (tmp_path / "mlflow.db").exists()


def test_tiny_recurrent_sweep_end_to_end(tmp_path):
    proc = run_cli(tmp_path, "-m", "arch=rnn,gru", "data=adding", "data.length=5", "data.n_train=32", "data.n_val=16",
                   "model.width=4", "init=pytorch", "optimizer=adam", "train.clip_norm=1", "train.epochs=1",
                   "train.batch_size=16", "train.log_every=1", "train.probe_size=8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = job_runs(client_for(tmp_path))
    assert sorted(r.info.run_name for r in runs) == ["gru-pytorch-T5-adam-clip1-s0", "rnn-tanh-pytorch-T5-adam-clip1-s0"]
    for run in runs:
        assert run.info.status == "FINISHED"
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["cell"] in ("rnn", "gru") and tags["seq_len"] == "5" and tags["dataset"] == "adding"
        assert tags["trainability"] in ("trained", "stalled") and tags["pathology_init"] != "n/a"
        assert {"grad_norm/train", "grad_norm/clipped_fraction", "profile_init/log10_delta_ms", "loss/val"} <= set(metrics)
