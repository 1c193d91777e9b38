"""Job liveness by lock, not by pid: a zombie and a reused pid count as gone, a live job does not."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import liveness, sweep

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from experiments import liveness
with liveness.hold(sys.argv[1]) as lock:
    Path(sys.argv[1], "ready").write_text(str(lock))
    time.sleep(120)
"""


def start_job(directory):
    """A process that holds the job lock of ``directory`` as a job does; returns (Popen, lock path)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), str(REPO)], start_new_session=True)
    deadline = time.monotonic() + 60
    while not (directory / "ready").exists():
        assert proc.poll() is None, "the lock holder ended early"
        assert time.monotonic() < deadline, "the lock holder did not start in 60 s"
        time.sleep(0.02)
    return proc, (directory / "ready").read_text()


def proc_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, Z, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]


def tag_of(pid):
    return f"{socket.gethostname()}:{pid}"


def test_a_live_job_is_left_alone(tmp_path):
    proc, lock = start_job(tmp_path)
    try:
        assert liveness.held(lock)
        assert not sweep.process_gone(tag_of(proc.pid), lock=lock)
        assert liveness.held(lock)  # asking did not take the lock away
    finally:
        proc.kill()
        proc.wait()
    assert not liveness.held(lock)
    assert sweep.process_gone(tag_of(proc.pid), lock=lock)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to confirm the zombie state")
def test_a_killed_job_not_yet_reaped_counts_as_gone(tmp_path):
    proc, lock = start_job(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # and no wait(): the process stays a zombie
        deadline = time.monotonic() + 30
        while proc_state(proc.pid) != "Z":
            assert time.monotonic() < deadline, "the killed process did not become a zombie"
            time.sleep(0.01)
        os.kill(proc.pid, 0)  # the pitfall: signal 0 reaches a zombie, so a pid check says "alive"
        assert not sweep.process_gone(tag_of(proc.pid))  # the pid-only rule of older runs
        assert sweep.process_gone(tag_of(proc.pid), lock=lock)
        assert proc_state(proc.pid) == "Z"  # still unreaped while judged
    finally:
        proc.wait()


def test_a_pid_reused_by_another_live_process_counts_as_gone(tmp_path):
    job, lock = start_job(tmp_path)
    job.kill()
    job.wait()
    # Another live process now has the pid the run's tag names (pids wrap): a sleeping stranger.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        tag = tag_of(stranger.pid)
        assert not sweep.process_gone(tag)  # by pid, the stranger looks like the job
        assert sweep.process_gone(tag, lock=lock)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_missing_lock_file_is_a_job_whose_record_is_gone(tmp_path):
    assert not liveness.held(tmp_path / "nowhere" / liveness.LOCK_FILE)
    assert sweep.process_gone(tag_of(os.getpid()), lock=str(tmp_path / liveness.LOCK_FILE))


def test_runs_on_other_hosts_are_not_judged_here(tmp_path):
    with liveness.hold(tmp_path) as lock:
        pass  # released: on this host the run would count as gone
    assert not sweep.process_gone("elsewhere.example:1", lock=str(lock))


def test_a_second_job_in_the_same_record_directory_is_refused(tmp_path):
    proc, _ = start_job(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="locked by another live job"):
            with liveness.hold(tmp_path, timeout=0.2):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_not_inherited_by_programs_the_job_starts(tmp_path):
    with liveness.hold(tmp_path) as lock:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        assert not liveness.held(lock)  # the job ended; its child program does not keep it "alive"
    finally:
        child.kill()
        child.wait()
