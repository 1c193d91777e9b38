"""Processes for end-to-end tests: the CLI and `mlflow server` on 127.0.0.1, each in its own process
group, bounded in time and killed with its group at the end; and the store's runs and local records."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(proc, grace=0.0):
    """SIGTERM (with ``grace``) then SIGKILL the process group of ``proc`` (start_new_session=True)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        if sig == signal.SIGTERM and not grace:
            continue
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass


def group_alive(pgid):
    """Whether a live (non-zombie) process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(") ", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def cli_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADPATH_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("FORCE", None)
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def cli_cmd(tmp_path, uri, *overrides, sweep_dir="multirun"):
    return [sys.executable, str(REPO / "experiments" / "train.py"), *overrides, f"tracking.uri={uri}",
            f"hydra.sweep.dir={tmp_path}/{sweep_dir}", f"hydra.run.dir={tmp_path}/outputs"]


def run_bounded(cmd, cwd, env, timeout=240):
    """subprocess.run in its own process group, killed with its children at the end or on timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_cli(tmp_path, uri, *overrides, env=None, timeout=240, sweep_dir="multirun"):
    return run_bounded(cli_cmd(tmp_path, uri, *overrides, sweep_dir=sweep_dir), tmp_path, cli_env(**(env or {})),
                       timeout)


class Server:
    """`mlflow server` on 127.0.0.1 (a sqlite backend unless given, proxied artifacts) that a test can stop and
    restart."""

    def __init__(self, root, port, backend_store_uri=None):
        self.root, self.port, self.proc = Path(root), port, None
        self.uri = f"http://127.0.0.1:{port}"
        self.backend = backend_store_uri or f"sqlite:///{self.root}/srv.db"

    def up(self, timeout=90):
        if self.proc is not None:
            return self.uri
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend,
               "--artifacts-destination", str(self.root / "art"), "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1"]
        env = {**cli_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log_path = self.root / "server.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.root, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.down()
                pytest.fail(f"mlflow server not healthy in {timeout} s: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.uri
            except OSError:
                pass
            time.sleep(0.5)

    def down(self):
        if self.proc is not None:
            kill_group(self.proc, grace=5)
            self.proc = None


def client_for(uri):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def runs_of(client, role="job", status=None, experiment="gradpath"):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    flt = f"tags.role = '{role}'" + (f" and attributes.status = '{status}'" if status else "")
    return client.search_runs([exp.experiment_id], filter_string=flt, max_results=1000)


def records(root):
    """{config_hash: record dir} of the job records under ``root``."""
    return {json.loads(p.read_text())["config_hash"]: p.parent for p in Path(root).rglob("status.json")}
