"""Wall time of a single run that does almost no work, on an existing store (issue target <= 3 s):

    python -m benchmarks.bench_startup [--repeats 3]

It runs ``python experiments/train.py model.depth=2 train.epochs=0`` against a store in a temporary
directory: once untimed (to create the store, as a user's first run does), then ``--repeats`` timed
times, and prints each wall time and their median. What it measures is everything a user waits for:
interpreter start, imports, the pre-flight, Hydra's compositions, the job and its logging, and exit.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, str(REPO / "experiments" / "train.py"), "model.depth=2", "train.epochs=0"]
TARGET_S = 3.0


def run_once(store, out):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    started = time.perf_counter()
    subprocess.run([*COMMAND, f"hydra.run.dir={out}"], env=env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gradpath-startup-") as tmp:
        store = Path(tmp, "mlflow.db")
        run_once(store, Path(tmp, "first"))
        walls = [run_once(store, Path(tmp, f"run{i}")) for i in range(args.repeats)]
    median = statistics.median(walls)
    print(f"start-up (python experiments/train.py {' '.join(COMMAND[2:])}, existing store): "
          f"{', '.join(f'{w:.2f}' for w in walls)} s; median {median:.2f} s "
          f"({'meets' if median <= TARGET_S else 'misses'} the {TARGET_S:g} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
