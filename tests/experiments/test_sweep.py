"""The pre-flight's stale-run close: only runs whose process has ended are marked KILLED."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import record, sweep, tracking


def _ended_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_identical_single_run_keeps_the_live_run_and_closes_dead_ones(tmp_path):
    argv = ["model.depth=2", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    plan = sweep.prepare(argv)
    (_, _, cfg_hash), = plan.jobs
    client = tracking.client(plan.uri)
    host = socket.gethostname()
    processes = {"live": f"{host}:{os.getpid()}",  # this process: a first command still training
                 "dead": f"{host}:{_ended_pid()}", "other_host": "elsewhere.example:1", "untagged": None}
    runs = {}
    for name, process in processes.items():
        tags = {"role": "job", "config_hash": cfg_hash, **({record.PROCESS_TAG: process} if process else {})}
        runs[name] = client.create_run(plan.experiment_id, run_name=name, tags=tags).info.run_id

    sweep.prepare(argv)  # the second, identical command
    state = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert state == {"live": "RUNNING", "dead": "KILLED", "other_host": "RUNNING", "untagged": "KILLED"}

    # Resuming a sweep of the same grid point also closes the other host's run; never the live one.
    assert sweep.close_stale_runs(client, plan.experiment_id, {cfg_hash}, resume=True) == 1
    assert client.get_run(runs["other_host"]).info.status == "KILLED"
    assert client.get_run(runs["live"]).info.status == "RUNNING"


def test_process_gone():
    host = socket.gethostname()
    assert sweep.process_gone(f"{host}:{_ended_pid()}")
    assert not sweep.process_gone(f"{host}:{os.getpid()}")
    assert not sweep.process_gone("elsewhere.example:1")
    assert sweep.process_gone("")


def test_a_reused_parent_run_records_its_new_launch(tmp_path):
    """The same grid launched again reuses its parent run (same id) and stamps the launch, so that
    the report's "latest sweep" is this one and not one started in between."""
    import time

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    jobs = [(["seed=0"], None, "h0"), (["seed=1"], None, "h1")]
    run_id = sweep.parent_run(client, exp, "abc", "study", jobs)
    first = int(client.get_run(run_id).data.tags[record.LAUNCHED_TAG])
    time.sleep(0.01)
    assert sweep.parent_run(client, exp, "abc", "study", jobs) == run_id
    again = int(client.get_run(run_id).data.tags[record.LAUNCHED_TAG])
    assert again > first and abs(again / 1000 - time.time()) < 60


@pytest.mark.parametrize("overrides,batch", [
    (["model.norm=batch", "train.batch_size=3"], 3),                 # digits: 1438 = 3 * 479 + 1
    (["model.norm=batch", "train.batch_size=1"], 1),
    (["model.norm=batch", "data=spirals", "data.n_samples=101", "data.val_fraction=0.5", "train.batch_size=10"], 10)])
def test_a_batchnorm_batch_of_one_fails_the_preflight(overrides, batch):
    """BatchNorm cannot train on a batch of one example: the pre-flight says so in one line,
    before any run exists (it used to fail in the job after a full epoch)."""
    with pytest.raises(sweep.PreflightError, match=r"train\.batch_size: BatchNorm needs at least 2 examples .*"
                                                    rf"in batches of {batch} leave a batch of 1"):
        sweep.compose_jobs([overrides])


def test_training_set_size_is_that_of_the_loaded_data():
    from experiments import datasets
    (job,) = sweep.compose_jobs([["data=spirals", "data.n_samples=101", "data.val_fraction=0.5"]])
    assert sweep.training_set_size(job[1].data, 0) == datasets.load(job[1].data, 0).X_train.shape[0] == 51
    (job,) = sweep.compose_jobs([[]])
    assert sweep.training_set_size(job[1].data, 0) == 1438  # digits: 1797 less a stratified fifth


def test_batchnorm_batches_of_two_or_more_pass_the_preflight():
    (job,) = sweep.compose_jobs([["model.norm=batch", "train.batch_size=64"]])
    assert job[1].train.batch_size == 64
    (job,) = sweep.compose_jobs([["train.batch_size=3"]])  # no BatchNorm: any batch size
    assert job[1].model.norm == "none"


def test_runs_with_a_job_lock_are_judged_by_the_lock(tmp_path):
    """The pre-flight closes a run whose job lock is free, even though its pid names a live process
    (reused), and keeps the run whose lock is held, whatever its pid."""
    from experiments import liveness
    argv = ["model.depth=2", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    plan = sweep.prepare(argv)
    (_, _, cfg_hash), = plan.jobs
    client = tracking.client(plan.uri)
    here = f"{socket.gethostname()}:{os.getpid()}"  # a live pid in both cases
    (tmp_path / "ended").mkdir()
    with liveness.hold(tmp_path / "ended") as free_lock:
        pass
    (tmp_path / "live").mkdir()
    with liveness.hold(tmp_path / "live") as held_lock:
        runs = {name: client.create_run(plan.experiment_id, run_name=name, tags={
            "role": "job", "config_hash": cfg_hash, record.PROCESS_TAG: here,
            record.PROCESS_LOCK_TAG: str(lock)}).info.run_id
            for name, lock in (("ended", free_lock), ("live", held_lock))}
        sweep.prepare(argv)
        state = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert state == {"ended": "KILLED", "live": "RUNNING"}


def test_a_job_run_carries_its_lock_while_it_trains(tmp_path):
    """A real job's run names its lock file in process_lock; after the job, the lock is free."""
    from experiments import liveness
    argv = ["model.depth=2", "model.width=8", "train.epochs=1", "train.histogram_snapshots=0",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    plan = sweep.prepare(argv)
    (_, cfg, _), = plan.jobs
    from experiments import runner
    assert runner.run_job(cfg, tmp_path / "job") == "ok"
    client = tracking.client(plan.uri)
    (run,) = client.search_runs([plan.experiment_id], filter_string="tags.role = 'job'")
    lock = run.data.tags[record.PROCESS_LOCK_TAG]
    assert Path(lock) == (tmp_path / "job" / liveness.LOCK_FILE).resolve() and Path(lock).exists()
    assert not liveness.held(lock)
