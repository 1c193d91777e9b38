"""experiments.tracking.client: MLflow's usage telemetry is off unless the environment turns it on."""
import os
import subprocess
import sys

import pytest

PROBE = ("import os, sys; from experiments import tracking; "
         "tracking.client('sqlite:///' + sys.argv[1]); "
         "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY; "
         "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], MLFLOW_DISABLE_TELEMETRY.get())")


def _client_env(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "mlflow.db")], env={**base, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_telemetry_is_off_by_default(tmp_path):
    assert _client_env(tmp_path) == ["true", "True"]


def test_an_explicit_setting_is_kept(tmp_path):
    assert _client_env(tmp_path, MLFLOW_DISABLE_TELEMETRY="false") == ["false", "False"]


# ---------------------------------------------- MLflow's own HTTP retries
HTTP_PROBE = ("from experiments import tracking; "
              "from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES as R, "
              "MLFLOW_HTTP_REQUEST_TIMEOUT as T; print(R.get(), T.get())")
HTTP_KEYS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")


def _run(code, *args, **env):
    base = {k: v for k, v in os.environ.items() if k not in HTTP_KEYS}
    return subprocess.run([sys.executable, "-c", code, *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_mlflow_http_retries_are_off_by_default():
    """tracking.retry does the retrying: MLflow's own 7 retries with a 120 s timeout inside each of
    its attempts made a job wait about 25 minutes for a server that is down."""
    out = _run(HTTP_PROBE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "30"]


def test_explicit_mlflow_http_settings_are_kept():
    out = _run(HTTP_PROBE, MLFLOW_HTTP_REQUEST_MAX_RETRIES="3", MLFLOW_HTTP_REQUEST_TIMEOUT="7")
    assert out.stdout.split() == ["3", "7"], out.stderr


def test_a_server_that_is_down_fails_after_tracking_retry_alone():
    """Nothing listens on the port: two attempts of tracking.retry, each a refused connection
    without MLflow's retries, end in one MlflowException (within the subprocess's timeout, where
    MLflow's retries alone would take minutes)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = ("import sys; from experiments import tracking; "
            "client = tracking.client(sys.argv[1]); "
            "tracking.retry(client.search_experiments, base_delay=0.01)")
    out = _run(code, f"http://127.0.0.1:{port}", GRADPATH_RETRY_ATTEMPTS="2")
    assert out.returncode != 0
    assert "Connection refused" in out.stderr or "Max retries exceeded" in out.stderr, out.stderr[-2000:]


def test_a_read_only_store_is_refused_to_writers_only(tmp_path, monkeypatch):
    """Training needs to write the sqlite store; the report without logging only reads it. (As
    root every path is writable, so the test makes os.access say no for the store's directory.)"""
    import sqlite3

    import pytest

    from experiments import tracking
    db = tmp_path / "mlflow.db"
    sqlite3.connect(db).close()
    real_access = os.access
    monkeypatch.setattr(tracking.os, "access", lambda path, mode: False if mode == os.W_OK else real_access(path, mode))
    with pytest.raises(tracking.StoreError, match="is not writable"):
        tracking.check_store(f"sqlite:///{db}")
    tracking.check_store(f"sqlite:///{db}", writable=False)


# ---------------------------------------------- a new sqlite store opened by two clients at once
# Each side opens 20 new stores, trial by trial, starting each trial together (a file barrier). Side
# "preflight" is our pre-flight (experiments.sweep.prepare of a single run); side "other" is a client
# that knows nothing of our lock, as a notebook or a script polling the store.
RACE = """
import sys, time
from pathlib import Path
role, root, trials = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
other = {"preflight": "other", "other": "preflight"}[role]
if role == "preflight":
    from experiments import sweep
else:
    from mlflow.tracking import MlflowClient
for i in range(trials):
    (root / f"{i}.{role}").touch()
    while not (root / f"{i}.{other}").exists():
        time.sleep(0.0005)
    uri = f"sqlite:///{root}/store{i}.db"
    try:
        if role == "preflight":
            sweep.prepare(["model.depth=2", f"tracking.uri={uri}"])
        else:
            MlflowClient(tracking_uri=uri).search_experiments()
        print(i, "ok", flush=True)
    except Exception as exc:
        print(i, "failed", type(exc).__name__, str(exc).splitlines()[0][:200], flush=True)
"""


@pytest.mark.slow
def test_a_new_store_opened_by_another_client_at_the_same_moment(tmp_path):
    """Measured before the fix: 5 of 10 pre-flights failed ('duplicate column name: step', 'table
    experiments already exists'), and one store was left half-migrated for good."""
    trials = 20
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = {role: subprocess.Popen([sys.executable, "-c", RACE, role, str(tmp_path), str(trials)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for role in ("preflight", "other")}
    outs = {}
    try:
        for role, proc in procs.items():
            outs[role] = proc.communicate(timeout=400)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
    for role, (out, err) in outs.items():
        assert procs[role].returncode == 0, err[-2000:]
        lines = out.strip().splitlines()
        assert lines == [f"{i} ok" for i in range(trials)], f"{role}: {[x for x in lines if 'ok' not in x]}"
    from mlflow.tracking import MlflowClient
    for i in range(trials):  # every store usable afterwards, with the pre-flight's experiment in it
        names = {e.name for e in MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/store{i}.db").search_experiments()}
        assert "gradpath" in names
