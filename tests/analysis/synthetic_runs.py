"""Synthetic sweeps in the experiments' data contract, for the analysis tests.

``make_frames`` builds the four tables of analysis.load.Frames for a small grid
without training anything. Each (activation, init) has a per-layer gain: the
log10 factor by which the gradient norm changes per layer toward the input
(negative: vanishing). Gains shrink as training goes on, so init and final differ.
``write_mlflow_runs`` logs such frames to a real MLflow store as the experiments
package does: a parent run, tagged child runs, final metrics and Parquet artifacts.
``quietly`` runs a call with warnings raised as errors.

(No __init__.py in this folder: pytest puts it on sys.path, and a package named
``analysis`` here would shadow the real one.)
"""
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import (HISTOGRAM_COLUMNS, LAYER_STATS_COLUMNS, RUN_COLUMNS, SCALAR_COLUMNS, Frames)
from experiments import record
from nncore.probes_recurrent import time_layer

# log10 change of the gradient norm per layer, toward the input, at initialization
VANISHING_GAINS = {
    ("sigmoid", "uniform"): -0.35, ("sigmoid", "xavier_uniform"): -0.12, ("sigmoid", "he_uniform"): -0.06,
    ("tanh", "uniform"): -0.15, ("tanh", "xavier_uniform"): -0.01, ("tanh", "he_uniform"): 0.07,
    ("relu", "uniform"): -0.2, ("relu", "xavier_uniform"): -0.15, ("relu", "he_uniform"): 0.0,
    ("leaky_relu", "uniform"): -0.19, ("leaky_relu", "xavier_uniform"): -0.14, ("leaky_relu", "he_uniform"): 0.0,
}
STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean", "act_var",
         "saturation", "dead_frac", "weight_norm", "update_ratio")
BINS = 64
# A small grid of one optimizer, no diverged or NaN run: for the sentences about the diagnosis.
SMALL_GRID = {"activations": ("relu", "sigmoid"), "inits": ("uniform", "he_uniform"), "depths": (2, 5),
              "optimizers": ("sgd",), "diverged": (), "nan_run": None}


def quietly(function, *args, **kwargs):
    """Call ``function`` with every warning raised as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return function(*args, **kwargs)


def run_id_of(activation, init, depth, optimizer, seed):
    return f"{activation}-{init}-d{depth}-{optimizer}-s{seed}"


def _layer_values(depth, gain, steps, activation):
    """{stat: array (n_steps, n_layers)} of one run."""
    n_layers = depth + 1
    layers = np.arange(1, n_layers + 1)[None, :]
    progress = (np.asarray(steps, dtype=np.float64) / max(steps[-1], 1))[:, None]
    gain_now = gain * (1 - 0.5 * progress)  # training partly repairs the imbalance
    distance = n_layers - layers            # layers between l and the output
    grad = 0.1 * 10.0 ** (gain_now * distance)
    act_var = 0.3 * 10.0 ** (gain_now * (layers - 1) * 0.5)
    mean_level = 0.5 if activation == "sigmoid" else (0.3 if "relu" in activation else 0.0)
    act_mean = mean_level * (1 - 0.8 * progress * layers / n_layers)
    saturation = np.clip(0.05 + 0.8 * progress * layers / n_layers, 0, 1)
    saturation[:, -1] = 0.0  # linear output layer
    ones = np.ones_like(grad)
    return {
        "grad_norm": grad, "bias_grad_norm": grad / 5, "delta_ms": 0.01 * 10.0 ** (2 * gain_now * distance),
        "preact_mean": act_mean / 2, "preact_var": act_var * 2, "act_mean": act_mean, "act_var": act_var,
        "saturation": saturation, "dead_frac": saturation ** 3, "weight_norm": 5.0 * ones,
        "update_ratio": np.where(progress > 0, 1e-3, 0.0) * ones,
    }


def _layer_frame(run_id, values, steps):
    """Long-format layer stats of one run from ``_layer_values``."""
    n_steps, n_layers = values["grad_norm"].shape
    step_grid = np.repeat(np.asarray(steps, dtype=np.int64), n_layers)
    layer_grid = np.tile(np.arange(1, n_layers + 1, dtype=np.int64), n_steps)
    return pd.DataFrame({"run_id": run_id, "step": np.tile(step_grid, len(STATS)),
                         "layer": np.tile(layer_grid, len(STATS)),
                         "stat": np.repeat(STATS, n_steps * n_layers),
                         "value": np.concatenate([values[stat].reshape(-1) for stat in STATS])})


def _normal_histograms(means, stds, n=2048):
    """(left, right, count) arrays (k, BINS) of normal samples binned over mean ± 4 std."""
    stds = np.where(stds > 0, stds, 1e-12)[:, None]
    fractions = np.linspace(-4, 4, BINS + 1)[None, :]
    edges = means[:, None] + fractions * stds
    centres = (fractions[:, 1:] + fractions[:, :-1]) / 2
    density = np.exp(-0.5 * centres ** 2)
    counts = np.round(n * density / density.sum()).astype(np.int64)
    return edges[:, :-1], edges[:, 1:], np.broadcast_to(counts, edges[:, 1:].shape)


def _histogram_frame(run_id, values, steps, hist_steps):
    """Histograms of activations, errors and weight gradients at ``hist_steps``."""
    frames = []
    for step in hist_steps:
        i = steps.index(step)
        layers = np.arange(1, values["grad_norm"].shape[1] + 1)
        for kind, means, stds in (("act", values["act_mean"][i], np.sqrt(values["act_var"][i])),
                                  ("delta", 0 * layers, np.sqrt(values["delta_ms"][i])),
                                  ("weight_grad", 0 * layers, values["grad_norm"][i] / 32)):
            left, right, count = _normal_histograms(np.asarray(means, np.float64), np.asarray(stds, np.float64))
            frames.append(pd.DataFrame({"run_id": run_id, "step": step, "layer": np.repeat(layers, BINS),
                                        "kind": kind, "bin": np.tile(np.arange(BINS), len(layers)),
                                        "left": left.reshape(-1), "right": right.reshape(-1),
                                        "count": count.reshape(-1)}))
    return frames


def _final_accuracy(gain, depth, optimizer):
    """Shallow, balanced networks learn; adam copes better with imbalance than sgd."""
    penalty = abs(gain) * depth * (0.4 if optimizer == "adam" else 1.0)
    return float(np.clip(0.95 - penalty, 0.1, 0.98))


def _scalar_rows(run_id, steps, accuracy):
    rows = []
    last = steps[-1] if steps[-1] > 0 else 1
    for step in steps:
        progress = step / last
        loss = 2.3 * (1 - accuracy) ** progress if step > 0 else np.nan  # NaN at step 0, as the trainer
        acc = 0.1 + (accuracy - 0.1) * progress
        for name, value in (("loss/train", loss), ("loss/val", loss * 1.1 if step else 2.3),
                            ("acc/train", acc + 0.01), ("acc/val", acc), ("grad_norm/probe_batch", 1.0)):
            rows.append({"run_id": run_id, "step": step, "name": name, "value": value})
    return rows


def make_frames(activations=("relu", "sigmoid"), inits=("he_uniform", "uniform", "xavier_uniform"),
                depths=(2, 5), optimizers=("adam", "sgd"), seeds=(0,), gains=None, n_probes=10,
                log_every=10, diverged=(("sigmoid", "uniform", 5, "sgd"),), nan_run=("relu", "uniform", 5, "adam"),
                missing_layer_run=None, histogram_probes=(0, 5), sweep="synthetic", failed_run=None):
    """Frames of a synthetic sweep.

    ``gains`` maps (activation, init) to the per-layer log10 gradient gain at init
    (default VANISHING_GAINS, 0 when absent). ``diverged`` lists the (activation,
    init, depth, optimizer) whose runs diverge halfway, ``nan_run`` one whose
    histories contain NaN and inf, ``missing_layer_run`` one missing layer 2, and ``failed_run``
    one that crashed before its first probe (status FAILED, no outcome, no metrics, no histories).
    Histograms are written at the probe indices ``histogram_probes`` and the end.
    """
    gains = VANISHING_GAINS if gains is None else gains
    all_steps = [i * log_every for i in range(n_probes + 1)]
    runs, layer_rows, hist_rows, scalar_rows = [], [], [], []
    for activation in activations:
        for init in inits:
            for depth in depths:
                for optimizer in optimizers:
                    for seed in seeds:
                        config = (activation, init, depth, optimizer)
                        run_id = run_id_of(activation, init, depth, optimizer, seed)
                        gain = gains.get((activation, init), 0.0)
                        is_diverged = config in set(diverged)
                        steps = all_steps[: len(all_steps) // 2] if is_diverged else all_steps
                        values = _layer_values(depth, gain, steps, activation)
                        stats = _layer_frame(run_id, values, steps)
                        if config == nan_run:
                            probe = stats["step"] == steps[1]
                            stats.loc[probe, "value"] = np.nan                    # a whole NaN probe
                            overflow = ((stats["stat"] == "grad_norm") & (stats["step"] == steps[-1])
                                        & (stats["layer"] == 1))
                            stats.loc[overflow, "value"] = np.inf                 # an overflowing value
                        layer_rows.append(stats)
                        hist_steps = [steps[i] for i in histogram_probes if i < len(steps)] + [steps[-1]]
                        hist_rows += _histogram_frame(run_id, values, steps, sorted(set(hist_steps)))
                        accuracy = _final_accuracy(gain, depth, optimizer)
                        scalar_rows += _scalar_rows(run_id, steps, accuracy)
                        final = {row["name"]: row["value"] for row in scalar_rows[-5:]}
                        runs.append({
                            "run_id": run_id, "run_name": run_id, "sweep": sweep, "activation": activation,
                            "init": init, "optimizer": optimizer, "depth": depth, "width": 32,
                            "dataset": "moons", "seed": seed, "lr": 0.01, "majority_rate": 0.1,
                            "n_in": 64.0, "n_out": 10.0,
                            "outcome": "diverged" if is_diverged else "ok", "status": "FINISHED",
                            "loss/train": final["loss/train"], "loss/val": final["loss/val"],
                            "acc/train": final["acc/train"], "acc/val": final["acc/val"],
                            "diverged_step": float(steps[-1] + 1) if is_diverged else np.nan,
                            "arch": "plain", "norm": "none", "residual_scale": np.nan, "variant": "",
                        })
    layer_stats = pd.concat(layer_rows, ignore_index=True)
    if missing_layer_run is not None:
        drop = (layer_stats["run_id"] == run_id_of(*missing_layer_run, seeds[0])) & (layer_stats["layer"] == 2)
        layer_stats = layer_stats[~drop].reset_index(drop=True)
    histograms = pd.concat(hist_rows, ignore_index=True)
    scalars = pd.DataFrame(scalar_rows, columns=list(SCALAR_COLUMNS))
    runs = pd.DataFrame(runs, columns=list(RUN_COLUMNS))
    if failed_run is not None:
        failed = run_id_of(*failed_run, seeds[0])
        layer_stats, histograms, scalars = (table[table["run_id"] != failed].reset_index(drop=True)
                                            for table in (layer_stats, histograms, scalars))
        runs.loc[runs["run_id"] == failed, ["outcome", "status"]] = ["unknown", "FAILED"]
        runs.loc[runs["run_id"] == failed, ["loss/train", "loss/val", "acc/train", "acc/val"]] = np.nan
    return Frames(runs=runs.astype(RUN_COLUMNS), layer_stats=layer_stats.astype(LAYER_STATS_COLUMNS),
                  histograms=histograms.astype(HISTOGRAM_COLUMNS), scalars=scalars.astype(SCALAR_COLUMNS),
                  experiment="synthetic", sweep=sweep)


def _config_params(run):
    """The dot-flattened Hydra config of a run, as the experiments log it."""
    return {"model.depth": run["depth"], "model.width": run["width"], "model.dropout": 0.0,
            "activation.name": run["activation"], "init.name": run["init"],
            "init.sigma_w": 1.0, "init.sigma_b": 0.0, "init.gain": 1.0, "init.value": 0.1,
            "optimizer.name": run["optimizer"], "optimizer.lr": run["lr"], "train.epochs": 5,
            "train.batch_size": 64, "train.log_every": 10, "train.probe_size": 256,
            "data.name": run["dataset"], "seed": run["seed"],
            **({"activation.alpha": 0.01} if run["activation"] == "leaky_relu" else {})}


def write_mlflow_runs(frames, client, experiment_id, workdir, with_parent=True, sweep="sweep-a", study="study",
                      grid=None):
    """Log ``frames`` to MLflow as the experiments package does; returns
    {synthetic run_id: MLflow run_id} and the parent run id ("" without parent). The config_hash
    of a run is its synthetic run_id; ``grid`` (config hashes) is written as the parent's grid
    record, as experiments.sweep does (None: no record, as parents logged before it)."""
    from mlflow.entities import Metric, Param, RunTag
    parent_id = ""
    if with_parent:
        parent = client.create_run(experiment_id, run_name=f"sweep-{study}-{sweep}",
                                   tags={"role": "parent", "sweep": sweep, "study": study})
        parent_id = parent.info.run_id
        if grid is not None:
            path = Path(workdir) / f"parent-{sweep}" / record.GRID_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([{"config_hash": h, "overrides": []} for h in grid]))
            client.log_artifact(parent_id, str(path))
    mapping = {}
    for _, run in frames.runs.iterrows():
        tags = {"activation": run["activation"], "init": run["init"], "optimizer": run["optimizer"],
                "depth": run["depth"], "width": run["width"], "dataset": run["dataset"], "seed": run["seed"],
                "config_hash": run["run_id"], "sweep": sweep if with_parent else "", "role": "job", "study": study,
                **{key: int(run[key]) for key in ("n_in", "n_out") if np.isfinite(run[key])}}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        created = client.create_run(experiment_id, run_name=run["run_name"],
                                    tags={key: str(value) for key, value in tags.items()})
        mlflow_id = created.info.run_id
        mapping[run["run_id"]] = mlflow_id
        metrics = [Metric(name, float(run[name]), 0, 100) for name in ("loss/train", "loss/val", "acc/train", "acc/val")
                   if np.isfinite(run[name])]
        stats = frames.layer_stats[frames.layer_stats["run_id"] == run["run_id"]]
        n_layers = int(stats["layer"].max())
        series = stats[stats["stat"].isin(record.SERIES_STATS) & stats["layer"].isin(record.series_layers(n_layers))]
        for _, row in series.iterrows():  # log10 over steps, as experiments.sync logs them
            if np.isfinite(row["value"]) and row["value"] > 0:
                metrics.append(Metric(record.series_key(row["stat"], int(row["layer"]), n_layers),
                                      math.log10(row["value"]), 0, int(row["step"])))
        if run["outcome"] == "diverged":
            metrics.append(Metric("diverged_step", float(run["diverged_step"]), 0, int(run["diverged_step"])))
        client.log_batch(mlflow_id, metrics=metrics,
                         params=[Param(key, str(value)) for key, value in _config_params(run).items()],
                         tags=[RunTag("outcome", run["outcome"])])
        run_dir = Path(workdir) / run["run_id"]
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, table in (("layer_stats", frames.layer_stats), ("histograms", frames.histograms),
                            ("scalars", frames.scalars)):
            rows = table[table["run_id"] == run["run_id"]].drop(columns="run_id")
            rows.to_parquet(run_dir / f"{name}.parquet", index=False)
            client.log_artifact(mlflow_id, str(run_dir / f"{name}.parquet"))
        client.set_terminated(mlflow_id, "FINISHED")
    if parent_id:
        client.set_terminated(parent_id, "FINISHED")
    return mapping, parent_id


def with_lr(frames, lr, suffix):
    """``frames`` with every run at learning rate ``lr`` and its run_id suffixed (``suffix``) in every
    table; the run names stay: runs that differ only in lr get the same name, as experiments.config.run_name
    gives them."""
    def renamed(table):
        kind = "category" if table["run_id"].dtype.name == "category" else "str"
        return table.assign(run_id=table["run_id"].astype(str) + suffix).astype({"run_id": kind})
    runs = renamed(frames.runs).assign(lr=float(lr))
    return Frames(runs=runs, layer_stats=renamed(frames.layer_stats), histograms=renamed(frames.histograms),
                  scalars=renamed(frames.scalars), experiment=frames.experiment, sweep=frames.sweep)


def concatenated(*parts):
    """One Frames of the runs of ``parts`` (same sweep)."""
    tables = {name: pd.concat([getattr(part, name).astype({"run_id": "str"}) for part in parts], ignore_index=True)
              for name in ("runs", "layer_stats", "histograms", "scalars")}
    return Frames(runs=tables["runs"].astype(RUN_COLUMNS), layer_stats=tables["layer_stats"].astype(LAYER_STATS_COLUMNS),
                  histograms=tables["histograms"].astype(HISTOGRAM_COLUMNS),
                  scalars=tables["scalars"].astype(SCALAR_COLUMNS), experiment=parts[0].experiment, sweep=parts[0].sweep)


def recurrent_only(frames, T=12, **fields):
    """``frames`` with its MLP runs replaced by one Elman run on adding (layer = k * 100000 + t), with
    ``fields`` set in its runs row."""
    run = {column: np.nan for column in frames.runs.columns}
    run.update({"run_id": "rec", "run_name": "rnn-tanh-pytorch-T12-adam-s0", "sweep": frames.runs["sweep"].iloc[0],
                "activation": "tanh", "init": "pytorch", "optimizer": "adam", "depth": 1, "width": 8, "seed": 0,
                "dataset": "adding", "outcome": "ok", "status": "FINISHED", "cell": "rnn", "recurrent_init": "same",
                "seq_len": float(T), "n_in": 2.0, "n_out": 1.0, "loss/val": 0.05, "trainability": "stalled",
                "pathology_init": "vanishing", "pathology_final": "none", "budget_init": "n/a",
                "budget_final": "n/a", "variant": "", **fields})
    stats = pd.DataFrame({"run_id": "rec", "step": 0, "layer": time_layer(1, np.arange(1, T + 1)),
                          "stat": "delta_ms", "value": 0.25 ** (T - np.arange(1, T + 1))})
    return replace(frames, runs=pd.DataFrame([run]), layer_stats=stats, flags=None, diagnosis=None)
