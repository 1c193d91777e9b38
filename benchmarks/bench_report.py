"""`make bench-report`: the report's time on a synthetic 1,000-run sweep (target: <= 60 s).

    python -m benchmarks.bench_report [--runs 1000] [--keep DIR]

Builds a sqlite MLflow store in a temporary directory (or DIR) holding one sweep of ``--runs``
job runs in the experiments' data contract: tags (the job's verdicts included, from nncore.diagnosis
on the synthetic statistics), params, final metrics and the four Parquet artifacts at the default study's sizes (depths 2-50, width 64, a probe every 20 of 345 steps,
every statistic, 64-bin histograms at 5 steps). The values follow a per-layer gain with seeded
noise, so the report has real profiles to draw and judge. Then it runs the report as
`make report` does (``python -m analysis.report``, logging to the store) and prints its time.
Results go to benchmarks/report_results.json. Building the store is not timed.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd

from experiments import record
from nncore import diagnosis, optimizers

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "report_results.json"
TARGET_SECONDS = 60.0
EXPERIMENT = "gradpath"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
INITS = ("uniform", "xavier_uniform", "he_uniform", "xavier_normal", "he_normal")
DEPTHS = (2, 5, 10, 20, 50)
OPTIMIZERS = (("sgd", 0.05), ("adam", 1e-3))
WIDTH, N_IN, N_OUT, STEPS, LOG_EVERY, BINS = 64, 64, 10, 345, 20, 64
STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean", "act_var",
         "saturation", "dead_frac", "weight_norm", "update_ratio", "unit_spread")
# log10 change per layer of the error toward the input (the shape of the default study's sweep)
GAIN = {"sigmoid": -1.3, "tanh": -0.4, "relu": -0.35, "leaky_relu": -0.35}
INIT_GAIN = {"uniform": 1.0, "xavier_uniform": 0.3, "xavier_normal": 0.3, "he_uniform": 0.0, "he_normal": 0.0}


def grid(n_runs):
    """(activation, init, depth, optimizer, lr, seed) for n_runs runs: the grid, seeds 0, 1, ..."""
    cells = [(a, i, d, o, lr) for a in ACTIVATIONS for i in INITS for d in DEPTHS for o, lr in OPTIMIZERS]
    return [(*cells[k % len(cells)], k // len(cells)) for k in range(n_runs)]


def run_tables(activation, init, depth, optimizer, seed):
    """(layer_stats, histograms, scalars) frames of one synthetic run."""
    rng = np.random.default_rng([seed, depth, ACTIVATIONS.index(activation), INITS.index(init)])
    steps = np.r_[np.arange(0, STEPS, LOG_EVERY), STEPS]
    L = depth + 1
    layers = np.arange(1, L + 1)
    gain = GAIN[activation] * INIT_GAIN[init] if activation != "sigmoid" else GAIN[activation] * (0.5 + INIT_GAIN[init])
    progress = (steps / STEPS)[:, None]
    noise = rng.normal(0.0, 0.1, (steps.size, L))
    delta = 0.09 * 10.0 ** (gain * (1 - 0.5 * progress) * (L - layers) + noise)
    act = 0.5 * 10.0 ** (0.5 * gain * (layers - 1) + noise)
    grad = np.sqrt(WIDTH * WIDTH * act * delta)
    values = {"grad_norm": grad, "bias_grad_norm": grad / 8, "delta_ms": delta, "preact_mean": 0.01 * noise,
              "preact_var": 2 * act, "act_mean": 0.3 * act ** 0.5, "act_var": act,
              "saturation": np.clip(0.5 + noise, 0, 1), "dead_frac": np.clip(0.1 + noise, 0, 1),
              "weight_norm": np.full((steps.size, L), 8.0), "update_ratio": np.where(progress > 0, 1e-3, 0.0) + 0 * noise,
              "unit_spread": 1.6 + 0 * noise}
    n = steps.size * L
    layer_stats = pd.DataFrame({"step": np.tile(np.repeat(steps, L), len(STATS)),
                                "layer": np.tile(np.tile(layers, steps.size), len(STATS)),
                                "stat": np.repeat(STATS, n),
                                "value": np.concatenate([values[s].reshape(-1) for s in STATS])})
    hist_steps = steps[[0, len(steps) // 4, len(steps) // 2, 3 * len(steps) // 4, -1]]
    edges = np.linspace(-4, 4, BINS + 1)
    counts = np.round(1000 * np.exp(-0.5 * ((edges[1:] + edges[:-1]) / 2) ** 2)).astype(np.int64)
    k = hist_steps.size * L * 3
    histograms = pd.DataFrame({"step": np.repeat(hist_steps, L * 3 * BINS),
                               "layer": np.tile(np.repeat(np.tile(layers, 3), BINS), hist_steps.size),
                               "kind": np.tile(np.repeat(np.repeat(["act", "delta", "weight_grad"], L), BINS),
                                               hist_steps.size),
                               "bin": np.tile(np.arange(BINS), k), "left": np.tile(edges[:-1], k),
                               "right": np.tile(edges[1:], k), "count": np.tile(counts, k)})
    accuracy = float(np.clip(0.95 + gain * depth / 10, 0.1, 0.97))
    loss = 2.3 * (np.maximum(1 - accuracy, 0.02) / 2.3) ** (steps / STEPS)
    acc = 0.1 + (accuracy - 0.1) * steps / STEPS
    series = {record.LOSS_TRAIN: loss, record.LOSS_VAL: loss * 1.1, record.ACC_TRAIN: acc + 0.01,
              record.ACC_VAL: acc, record.GRAD_NORM_PROBE_BATCH: np.ones(steps.size)}
    scalars = pd.DataFrame({"step": np.tile(steps, len(series)), "name": np.repeat(list(series), steps.size),
                            "value": np.concatenate(list(series.values())), "timestamp": 0})
    return layer_stats, histograms, scalars, values, loss


def job_diagnosis(values, loss, accuracy, optimizer, lr, depth):
    """(verdict tags, diagnosis.parquet table) as the job writes them (experiments.diagnose), from the
    synthetic statistics by nncore.diagnosis: the report reads these, it does not redo them."""
    fan = np.array([N_IN * WIDTH] + [WIDTH * WIDTH] * (depth - 1) + [WIDTH * N_OUT], dtype=np.float64)
    rule = optimizers.get(optimizer, lr=lr)
    tags, frames = {}, []
    for when, i in (("init", 0), ("final", -1)):
        stats = {stat: values[stat][i] for stat in diagnosis.REQUIRED + diagnosis.OPTIONAL}
        flags = diagnosis.diagnose(stats)
        budget = diagnosis.budget(stats, float(loss[i]), STEPS, rule, fan)
        tags[f"pathology_{when}"], tags[f"budget_{when}"] = diagnosis.flag_set(flags), diagnosis.flag_set(budget)
        step = 0 if i == 0 else STEPS
        for flag, raised in {**flags, **(budget or {})}.items():
            frames.append(pd.DataFrame({"step": step, "layer": np.arange(1, depth + 1), "flag": flag,
                                        "raised": raised}))
    tags["trainability"] = diagnosis.trainability(False, accuracy, 0.1003, float(loss[0]), float(loss[-1]))
    return tags, pd.concat(frames, ignore_index=True).astype(record.DIAGNOSIS_COLUMNS)


def build_store(root, n_runs):
    """A sqlite store under ``root`` with one sweep of ``n_runs`` job runs; returns its URI."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    sweep = "bench-report"
    parent = client.create_run(exp, run_name=f"sweep-study-{sweep}", tags={"role": "parent", "sweep": sweep,
                                                                         "study": "study"})
    for k, (activation, init, depth, optimizer, lr, seed) in enumerate(grid(n_runs)):
        name = f"{activation}-{init}-d{depth}-{optimizer}-s{seed}"
        tags = {"activation": activation, "init": init, "optimizer": optimizer, "depth": depth, "width": WIDTH,
                "dataset": "digits", "seed": seed, "config_hash": f"{k:012x}", "sweep": sweep, "role": "job",
                "study": "study", "n_in": N_IN, "n_out": N_OUT, "outcome": "ok", "majority_rate": 0.1003,
                "mlflow.parentRunId": parent.info.run_id}
        run = client.create_run(exp, run_name=name, tags={key: str(v) for key, v in tags.items()})
        run_id = run.info.run_id
        layer_stats, histograms, scalars, values, loss = run_tables(activation, init, depth, optimizer, seed)
        final = scalars[scalars["step"] == STEPS].set_index("name")["value"]
        verdicts, flags = job_diagnosis(values, loss, float(final[record.ACC_VAL]), optimizer, lr, depth)
        params = {"model.depth": depth, "model.width": WIDTH, "activation.name": activation, "activation.alpha": 0.01,
                  "init.name": init, "init.sigma_w": 1.0, "init.sigma_b": 0.0, "init.gain": 1.0,
                  "optimizer.name": optimizer, "optimizer.lr": lr, "data.name": "digits", "seed": seed}
        client.log_batch(run_id, metrics=[Metric(key, float(v), 0, STEPS) for key, v in final.items()],
                         params=[Param(key, str(v)) for key, v in params.items()],
                         tags=[RunTag("outcome", "ok"), *(RunTag(key, v) for key, v in verdicts.items())])
        # The artifact store is local: write the files where log_artifact would copy them.
        folder = Path(url2pathname(urlparse(run.info.artifact_uri).path))
        folder.mkdir(parents=True, exist_ok=True)
        for table, frame in (("layer_stats", layer_stats), ("histograms", histograms), ("scalars", scalars),
                             ("diagnosis", flags)):
            frame.to_parquet(folder / f"{table}.parquet", index=False)
        client.set_terminated(run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")
    return uri


def time_report(uri, out):
    """Wall seconds of the report as `make report` runs it, and its own summary line."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--tracking-uri", uri, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_report: the report failed:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout.strip().splitlines()[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_report", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None, help="build the store in DIR and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        uri = build_store(root, args.runs)
        print(f"bench_report: built a {args.runs}-run store in {time.perf_counter() - started:.0f} s ({root})")
        results = {"runs": args.runs, "target_seconds": TARGET_SECONDS}
        seconds, line = time_report(uri, root / "report")
        results["seconds"] = round(seconds, 2)
        print(f"bench_report: the report: {seconds:.1f} s (target <= {TARGET_SECONDS:g} s): {line}")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
