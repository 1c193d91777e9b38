"""Whether a job is still alive, without trusting its pid.

A job holds an exclusive ``flock`` on ``job.lock`` in its record directory for as long as it runs
(``hold``), and its run carries that file's path in the tag ``process_lock`` (beside ``process``,
host:pid, for people). The kernel releases a flock when the last descriptor of it closes, which a
dying process does before it becomes a zombie: so a lock that can be taken (``held`` is False)
proves that the job has ended, even while its pid is an unreaped zombie (``os.kill(pid, 0)``
succeeds on one; a container whose PID 1 does not reap keeps zombies for its lifetime) or has been
reused by another process (pids wrap at /proc/sys/kernel/pid_max).

Only the host that ran a job can ask: flock on a network file system is not a liveness test
between hosts, so runs of other hosts are judged by the caller (experiments.sweep.process_gone).
"""
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "job.lock"


@contextmanager
def hold(directory, timeout=10.0):
    """Hold the exclusive lock of the job whose record is ``directory``; yields the lock's path.

    Waits up to ``timeout`` s for the lock: a pre-flight's test (``held``) takes it for a moment.
    The descriptor is not inherited by programs the job starts (O_CLOEXEC), so none of them can
    keep a finished job looking alive."""
    path = Path(directory).resolve() / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{path} is locked by another live job: two jobs in one record directory")
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)  # releases the lock


def held(path):
    """Whether a live process holds the job lock at ``path``. A missing file is no live job (its
    record is gone); an unreadable one cannot be tested and counts as held (never close a run
    that may be alive)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock, if taken
    return False
