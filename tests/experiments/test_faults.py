"""No lost runs: a real tracking server, outages, killed sweeps, concurrent writers, broken stores,
and other launchers. Every process started here is in its own process group, bound to 127.0.0.1,
bounded in time, and killed with its group at the end."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments import record as rec
from experiments import runner, sync
from processes import (REPO, Server, cli_cmd, cli_env, client_for, free_port, group_alive, kill_group, records,
                       run_bounded, run_cli, runs_of)

pytestmark = pytest.mark.slow

TINY = ["model.depth=2", "model.width=8", "train.epochs=1", "train.batch_size=256", "train.log_every=5",
        "train.probe_size=32", "train.histogram_snapshots=0"]
GRID8 = ["-m", "activation=tanh,relu", "init=uniform,he_uniform", "seed=0,1", *TINY]
# Fail fast when nothing listens: no HTTP retries inside MLflow, two attempts in tracking.retry.
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
             "GRADPATH_RETRY_ATTEMPTS": "2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (it takes 10-50 s to start on 2 cores), started on first use."""
    srv = Server(tmp_path_factory.mktemp("server"), free_port())
    try:
        yield srv
    finally:
        srv.down()


def assert_run_matches_record(client, run, record):
    """Every metric the record implies is in the run, with its full history: the scalars over steps,
    log10 grad_norm of the first and last layer over steps, the profiles (one point per layer with a
    positive finite value), and the single numbers."""
    stats = pd.read_parquet(record / "layer_stats.parquet")
    scalars = pd.read_parquet(record / "scalars.parquet")
    status = json.loads((record / "status.json").read_text())
    n_layers = int(stats.layer.max())
    expected = {name: int(n) for name, n in scalars.groupby("name").size().items()}
    edge = stats[(stats.stat == "grad_norm") & stats.layer.isin([1, n_layers])]
    edge = edge[(edge.value > 0) & (edge.value < float("inf"))]  # logged in log10: the others are left out
    expected.update({f"log10_grad_norm/layer_{layer:02d}": int(n) for layer, n in edge.groupby("layer").size().items()})
    for profile, step in (("init", 0), ("final", int(stats.step.max()))):
        at = stats[stats.step == step].pivot(index="layer", columns="stat", values="value")
        for name, values in (("log10_grad_norm", at.grad_norm), ("log10_delta_ms", at.delta_ms),
                             ("log10_act_var", at.act_var), ("log10_grad_norm_rel", at.grad_norm / at.weight_norm)):
            n = int(((values > 0) & (values < float("inf"))).sum())
            if n:
                expected[f"profile_{profile}/{name}"] = n
    expected.update({"time/train_seconds": 1, "depth": 1, "width": 1, "seed": 1, "log10_grad_ratio_init": 1})
    if status.get("diverged_step") is not None:
        expected["diverged_step"] = 1
    assert set(run.data.metrics) == set(expected)
    for key, n in expected.items():
        assert len(client.get_metric_history(run.info.run_id, key)) == n, key
    return sum(expected.values())


# The server down during a run: spool locally, then sync ---------------------------------------------

@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("GRADPATH_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key, value in FAST_FAIL.items():
        monkeypatch.setenv(key, value)


def test_server_down_spools_the_run_and_sync_uploads_it_once(tmp_path, server, compose_cfg, clean_env, capsys,
                                                               monkeypatch):
    server.down()  # the store is down for the whole job: neither opening nor uploading the run works
    uri = server.uri
    cfg = compose_cfg(*TINY, f"tracking.uri={uri}")
    record = tmp_path / "outputs" / "run0"
    started = time.monotonic()
    assert runner.run_job(cfg, record, overrides=TINY) == "ok"  # nothing listens: neither open nor upload works
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "tracking store unavailable at start" in err and "make sync" in err
    status = json.loads((record / "status.json").read_text())
    assert status["status"] == "FINISHED" and status["synced"] is False and status["run_id"] is None
    for name in rec.ARTIFACTS:
        assert (record / name).is_file()

    live = server.up()  # back up: `make sync` uploads the record
    assert sync.main([str(tmp_path / "outputs")]) == 0
    assert "1 uploaded" in capsys.readouterr().out
    assert sync.main([str(tmp_path / "outputs")]) == 0
    assert "1 already synced, 0 uploaded" in capsys.readouterr().out
    client = client_for(live)
    exp = client.get_experiment_by_name("gradpath")
    (run,) = client.search_runs([exp.experiment_id], max_results=100)  # every run: exactly one
    assert run.info.status == "FINISHED" and run.data.tags["outcome"] == "ok"
    assert json.loads((record / "status.json").read_text())["run_id"] == run.info.run_id
    assert_run_matches_record(client, run, record)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= set(rec.ARTIFACTS)

    # The same grid point again, its upload lost this time (say the server went down after the
    # run was opened): sync must not make it a second FINISHED run of the same config_hash.
    with monkeypatch.context() as patch:
        patch.setattr(sync, "upload", lambda *a, **k: False)
        assert runner.run_job(cfg, tmp_path / "outputs" / "run1", overrides=TINY) == "ok"
    orphan = json.loads((tmp_path / "outputs" / "run1" / "status.json").read_text())["run_id"]
    assert client.get_run(orphan).info.status == "RUNNING"
    assert sync.main([str(tmp_path / "outputs")]) == 0
    assert "1 already synced, 0 uploaded, 1 superseded" in capsys.readouterr().out
    finished = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
    assert [r.info.run_id for r in finished] == [run.info.run_id]
    assert client.get_run(orphan).info.status == "KILLED"
    print("\nserver down: 1 run attempted with the server down, spooled, synced once (1 FINISHED run); "
          "a second copy of the grid point superseded, not duplicated")


# A sweep against a real tracking server -----------------------------------------------------------------

def test_multirun_against_a_real_tracking_server(tmp_path, server):
    uri = server.up()
    proc = run_cli(tmp_path, uri, "-m", "activation=tanh,relu", "init=uniform,he_uniform", *TINY,
                   "tracking.experiment=server_sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = client_for(uri)
    runs = runs_of(client, experiment="server_sweep")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["config_hash"] for r in runs}) == 4
    (parent,) = runs_of(client, role="parent", experiment="server_sweep")
    assert parent.info.status == "FINISHED"
    local = records(tmp_path / "multirun")
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert tags["outcome"] == "ok" and tags["depth"] == "2" and tags["mlflow.parentRunId"] == parent.info.run_id
        assert params["model.depth"] == "2" and params["model.width"] == "8"
        record = local[tags["config_hash"]]
        assert json.loads((record / "status.json").read_text())["synced"] is True
        assert_run_matches_record(client, run, record)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert set(rec.ARTIFACTS) <= artifacts
        dest = tmp_path / "dl" / run.info.run_id
        dest.mkdir(parents=True)
        for name in ("layer_stats.parquet", "histograms.parquet", "scalars.parquet"):
            got = pd.read_parquet(client.download_artifacts(run.info.run_id, name, str(dest)))
            pd.testing.assert_frame_equal(got, pd.read_parquet(record / name))
    assert any((server.root / "art").rglob("layer_stats.parquet"))  # proxied into --artifacts-destination


# A sweep killed, then resumed ----------------------------------------------------------------------------

@pytest.mark.parametrize("sig,grid,n_runs,kill_after", [
    (signal.SIGKILL, GRID8, 8, 2),  # a lost node, the OOM killer, kill -9 of the sweep's process group
    # Ctrl-C. 8 runs, not 4: with 4 the sweep could end before the poll saw one FINISHED and one RUNNING
    (signal.SIGINT, GRID8, 8, 1),
    # what timeout, systemd and SLURM send, to the launcher alone: its workers must not outlive it
    (signal.SIGTERM, GRID8, 8, 1),
], ids=["SIGKILL", "SIGINT", "SIGTERM-launcher"])
def test_killed_sweep_resumes_without_loss_or_duplicates(tmp_path, sig, grid, n_runs, kill_after):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = cli_cmd(tmp_path, uri, *grid, "hydra.launcher.n_jobs=2")
    with open(tmp_path / "first.log", "w") as log:
        # SIGINT back to its default in the child: a shell without job control starts background
        # commands with SIGINT ignored, and a Python started so never raises KeyboardInterrupt.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=cli_env(),
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        client = None
        # Kill with runs FINISHED and at least one open (RUNNING): some done, some cut short.
        while client is None or len(runs_of(client, status="FINISHED")) < kill_after or not runs_of(
                client, status="RUNNING"):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            if client is None and "to run; store" in (tmp_path / "first.log").read_text():
                client = client_for(uri)  # only once the pre-flight has made the store
            assert time.monotonic() < deadline, f"no {kill_after} FINISHED runs and a RUNNING one in 180 s"
            time.sleep(0.2)
        if sig == signal.SIGTERM:
            os.kill(proc.pid, sig)  # the launcher alone
        else:
            os.killpg(proc.pid, sig)  # the launcher and its workers
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name} did not end the sweep in 60 s")
        parent_at_kill = [r.info.status for r in runs_of(client, role="parent")]
        # The re-run starts at once, as a user's does: killed workers may still be zombies (orphans
        # wait for init to reap them: measured 1.85 s) and their pids may be reused meanwhile.
        again = run_bounded(cmd, tmp_path, cli_env(), timeout=240)
        deadline = time.monotonic() + 30
        while group_alive(proc.pid):
            assert time.monotonic() < deadline, "workers survived their launcher"
            time.sleep(0.2)
    finally:
        kill_group(proc)
    assert proc.returncode != 0
    if sig == signal.SIGTERM:  # handled as Ctrl-C: the parent run is closed as KILLED at once
        assert proc.returncode == 130, (tmp_path / "first.log").read_text()[-3000:]
        assert parent_at_kill == ["KILLED"]
    assert again.returncode == 0, again.stderr[-3000:]
    found = re.search(rf"{n_runs} runs, (\d+) skipped \(already FINISHED\)", again.stderr)
    assert found, again.stderr[-3000:]
    finished_at_kill = int(found.group(1))  # what the re-run's pre-flight found done
    assert finished_at_kill < n_runs, "the sweep ended before the kill: nothing was tested"
    running_at_kill = n_runs - finished_at_kill  # cut short: left RUNNING (SIGKILL) or closed as KILLED
    assert sync.main([str(tmp_path / "multirun")]) == 0  # nothing to upload, nothing duplicated
    runs = runs_of(client)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == n_runs and len({r.data.tags["config_hash"] for r in finished}) == n_runs
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED", "FAILED"}  # none left RUNNING
    (parent,) = runs_of(client, role="parent")
    assert parent.info.status == "FINISHED"
    statuses = [r.info.status for r in runs]
    print(f"\n{sig.name}: {n_runs} grid points; {finished_at_kill} FINISHED and {running_at_kill} not at "
          f"the kill; re-run at once; after resume {statuses.count('FINISHED')} FINISHED, {statuses.count('KILLED')} KILLED, "
          f"{statuses.count('FAILED')} FAILED, lost 0, duplicated 0")


# Concurrent writers ------------------------------------------------------------------------------------------

def test_four_concurrent_writers_lose_no_metric(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert not (tmp_path / "mlflow.db").exists()
    proc = run_cli(tmp_path, uri, *GRID8, "hydra.launcher.n_jobs=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = client_for(uri)
    runs = runs_of(client)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    local = records(tmp_path / "multirun")
    assert len(local) == 8 and {r.data.tags["config_hash"] for r in runs} == set(local)
    values = 0
    for run in runs:
        record = local[run.data.tags["config_hash"]]
        assert json.loads((record / "status.json").read_text())["synced"] is True
        values += assert_run_matches_record(client, run, record)
    print(f"\n4 writers: 8 runs attempted, {len(runs)} FINISHED, {values} metric values all in the store, "
          "lost 0, duplicated 0")


def test_concurrent_single_runs_create_a_new_store_once(tmp_path):
    """Four independent commands into a store that does not exist yet: the schema migration and
    the experiment creation race each other (without the store's lock they fail)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = []
    try:
        for seed in range(4):
            cmd = cli_cmd(tmp_path, uri, *TINY, f"seed={seed}")
            cmd[-1] = f"hydra.run.dir={tmp_path}/outputs/{seed}"
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          cwd=tmp_path, env=cli_env(), start_new_session=True))
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    client = client_for(uri)
    assert len(client.search_experiments()) == 2  # Default and gradpath
    runs = runs_of(client)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["seed"] for r in runs} == {"0", "1", "2", "3"}


# Bad input: one line, non-zero exit, no run -------------------------------------------------------------

def _assert_one_line_error(proc, needle):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]


@pytest.mark.parametrize("case", ["missing_dir", "parent_is_file", "unreachable", "corrupted"])
def test_unusable_store_fails_before_any_run(tmp_path, case):
    if case == "missing_dir":
        uri, needle = f"sqlite:///{tmp_path}/no/such/dir/mlflow.db", "does not exist"
    elif case == "parent_is_file":
        (tmp_path / "afile").write_text("not a directory")
        uri, needle = f"sqlite:///{tmp_path}/afile/mlflow.db", "is not a directory"
    elif case == "unreachable":
        uri, needle = f"http://127.0.0.1:{free_port()}", "unreachable"
    else:
        junk = os.urandom(4096)
        (tmp_path / "mlflow.db").write_bytes(junk)
        uri, needle = f"sqlite:///{tmp_path}/mlflow.db", "not a usable sqlite database"
    for argv in (["-m", "seed=0,1", *TINY], TINY):  # a sweep and a single run
        proc = run_cli(tmp_path, uri, *argv, env=FAST_FAIL, timeout=120)
        _assert_one_line_error(proc, needle)
        assert uri in proc.stderr
        assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
    if case == "corrupted":
        assert (tmp_path / "mlflow.db").read_bytes() == junk  # untouched
    assert not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == {"missing_dir": [], "parent_is_file": ["afile"],
                                                          "unreachable": [], "corrupted": ["mlflow.db"]}[case]


def test_malformed_override_fails_before_any_run(tmp_path):
    proc = run_cli(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", "-m", "seed=0,1", "model.depth=(3", timeout=120)
    _assert_one_line_error(proc, "model.depth")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


# Other launchers ---------------------------------------------------------------------------------------------

def test_env_set_overrides_round_trip_through_hydra():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from experiments.train import env_set_overrides
    env = {"GRADPATH_SKIP_FILE": "/tmp/gradpath-x y/skip.json", "GRADPATH_EXPERIMENT_ID": "12", "EMPTY": "",
           "QUOTE": "it's \\ fine"}
    parsed = OverridesParser.create().parse_overrides(env_set_overrides(env))
    assert {o.key_or_group.split(".")[-1]: o.value() for o in parsed} == env


def test_worker_that_cannot_read_the_skip_list_asks_the_store(tmp_path, compose_cfg, clean_env, monkeypatch):
    """A SLURM or Ray worker on another host does not see the launcher's temporary skip list."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_cfg(*TINY, f"tracking.uri={uri}")
    assert runner.run_job(cfg, tmp_path / "first", overrides=TINY) == "ok"
    exp_id = client_for(uri).get_experiment_by_name("gradpath").experiment_id
    monkeypatch.setenv(runner.ENV_EXPERIMENT_ID, exp_id)
    monkeypatch.setenv(runner.ENV_SKIP_FILE, str(tmp_path / "on-another-host" / "skip.json"))
    monkeypatch.setenv(runner.ENV_PROGRESS_DIR, str(tmp_path / "on-another-host" / "progress"))
    assert runner.run_job(cfg, tmp_path / "again", overrides=TINY) == "skipped"
    other = compose_cfg(*TINY, f"tracking.uri={uri}", "seed=1")
    assert runner.run_job(other, tmp_path / "seed1", overrides=TINY) == "ok"  # and no progress dir: no crash
    assert len(runs_of(client_for(uri), status="FINISHED")) == 2


def _assert_sweep_logged(uri, n):
    client = client_for(uri)
    runs = runs_of(client)
    (parent,) = runs_of(client, role="parent")
    assert len(runs) == n and {r.info.status for r in runs} == {"FINISHED"}
    # GRADPATH_* reached the workers: runs are nested under the sweep's parent and tagged with it.
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {r.data.tags["sweep"] for r in runs} == {parent.data.tags["sweep"]}


def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_cli(tmp_path, uri, "-m", "hydra/launcher=submitit_local", "seed=0,1", *TINY, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 ok" in proc.stderr
    _assert_sweep_logged(uri, 2)


RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray on the loopback address only
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def test_ray_launcher_local(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_cli(tmp_path, uri, "-m", "hydra/launcher=ray", "hydra.launcher.ray.init.address=local",
                   "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
                   "seed=0,1", *TINY, env=RAY_ENV, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_sweep_logged(uri, 2)


def test_ray_cluster_workers_get_the_sweep_environment(tmp_path):
    """Workers of a Ray cluster started elsewhere do not inherit the launcher's environment:
    hydra.job.env_set carries GRADPATH_* to them."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    port = free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    head_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                "PYTHONPATH": str(REPO), **RAY_ENV}
    with open(tmp_path / "head.log", "w") as log:
        head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
                                 "--include-dashboard=false"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env=head_env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "--block" not in (tmp_path / "head.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(0.5)
        uri = f"sqlite:///{tmp_path}/mlflow.db"
        proc = run_cli(tmp_path, uri, "-m", "hydra/launcher=ray_cluster",
                       f"hydra.launcher.ray.init.address=127.0.0.1:{port}", "seed=0,1", *TINY,
                       env={**RAY_ENV, "PYTHONPATH": str(REPO)}, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _assert_sweep_logged(uri, 2)
    finally:
        kill_group(head, grace=10)
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()
