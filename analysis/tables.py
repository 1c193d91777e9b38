"""Derived tables shared by the figures, the observations and summary.csv.

Everything here is a plain function of the load tables (runs, layer_stats, ...),
so a figure and the sentence describing it always read the same numbers.

Non-finite values (NaN, inf) and, where a logarithm is taken, non-positive values
are treated as missing: they cannot be placed on a log axis, and a probe that
overflowed says nothing reliable about the layer profile.
"""
import numpy as np
import pandas as pd

INIT, FINAL = "init", "final"
# |log10 ratio| below this: the first and last gradient norms are within a factor 10. Not a
# health criterion alone (both signals can vanish with a flat ratio): health is the diagnosis's.
HEALTHY_LOG10_RATIO = 1.0
CONFIG = ["activation", "init", "optimizer", "depth"]


def safe_log10(values):
    """log10 of the finite positive entries, NaN elsewhere (no warnings)."""
    values = np.asarray(values, dtype=np.float64)
    usable = np.isfinite(values) & (values > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(usable, np.log10(np.where(usable, values, 1.0)), np.nan)


def finite(frame, column="value"):
    """Rows of ``frame`` whose ``column`` is finite."""
    return frame[np.isfinite(frame[column].to_numpy(dtype=np.float64))]


def last_steps(layer_stats):
    """Series run_id -> the run's last logged step (for a diverged run, the last
    finite probe before divergence)."""
    return layer_stats.groupby("run_id")["step"].max()


def stat_at(layer_stats, stat, when):
    """Rows (run_id, step, layer, value) of ``stat`` at init (step 0) or at each run's
    last logged step (``when`` = "final")."""
    if when not in (INIT, FINAL):
        raise ValueError(f"when must be {INIT!r} or {FINAL!r}, got {when!r}")
    rows = layer_stats[layer_stats["stat"] == stat]
    if when == INIT:
        rows = rows[rows["step"] == 0]
    else:
        # Every stat is logged at the same probes, so the stat's own last step is the run's.
        rows = rows[rows["step"] == rows.groupby("run_id")["step"].transform("max")]
    return rows[["run_id", "step", "layer", "value"]]


def with_config(frame, runs, columns=CONFIG):
    """``frame`` joined with the run configuration ``columns`` on run_id."""
    return frame.merge(runs[["run_id", *columns]], on="run_id", how="inner")


def layer_profile(layer_stats, runs, stat, when, by=("activation", "init", "depth"), spread=False):
    """Median over runs of ``stat`` per (``by``..., layer), at init or at the end; with
    ``spread`` also the min ("low") and max ("high") over those runs.

    The median over seeds (and, at init, over optimizers, which share the initial
    network) is robust to the odd run whose probe overflowed."""
    rows = finite(with_config(stat_at(layer_stats, stat, when), runs))
    columns = [*by, "layer", "value"] + (["low", "high"] if spread else [])
    if rows.empty:
        return pd.DataFrame({name: pd.Series(dtype=runs[name].dtype if name in runs else "float64")
                             for name in columns})
    grouped = rows.groupby([*by, "layer"], as_index=False)["value"]
    if not spread:
        return grouped.median()[columns]
    out = grouped.agg(value="median", low="min", high="max")
    return out[columns]


def layer_value(layer_stats, runs, stat, when, layer):
    """Series run_id -> ``stat`` at ``layer`` ("first", "last_hidden", "output" or an
    int) at init or at the end. "output" is layer depth+1, "last_hidden" layer depth."""
    rows = stat_at(layer_stats, stat, when).merge(runs[["run_id", "depth"]], on="run_id")
    wanted = {"first": 1, "last_hidden": rows["depth"], "output": rows["depth"] + 1}.get(layer, layer)
    picked = rows[rows["layer"] == wanted]
    return picked.groupby("run_id")["value"].first()


def log10_layer_ratio(layer_stats, runs, stat, when, top="first", bottom="output"):
    """Series run_id -> log10(stat at ``top`` / stat at ``bottom``), NaN when either is
    missing, non-finite or non-positive."""
    numerator = layer_value(layer_stats, runs, stat, when, top)
    denominator = layer_value(layer_stats, runs, stat, when, bottom)
    both = pd.concat([numerator.rename("top"), denominator.rename("bottom")], axis=1)
    both = both.reindex(runs["run_id"])
    ratio = safe_log10(both["top"]) - safe_log10(both["bottom"])
    return pd.Series(ratio, index=both.index, name=f"log10_{stat}_ratio_{when}")


def grad_ratio(layer_stats, runs, when=INIT):
    """Series run_id -> log10(grad_norm at layer 1 / grad_norm at layer L), L = depth+1.

    Negative: the gradient vanishes toward the input; positive: it explodes."""
    return log10_layer_ratio(layer_stats, runs, "grad_norm", when, "first", "output")


def config_ratio(ratios, runs, by=("activation", "init", "depth")):
    """Median of a run_id-indexed ratio Series per configuration ``by``; columns
    (*by, "value"), NaN-only configurations kept as NaN."""
    frame = runs[["run_id", *by]].assign(value=runs["run_id"].map(ratios).to_numpy(np.float64))
    return frame.groupby(list(by), as_index=False)["value"].median()


def flagged_configs(runs, column="pathology_init", by=("activation", "init", "depth")):
    """The configurations ``by`` whose runs carry a flag in ``column`` in at least half of them
    (at init the floor of the vanishing flag depends on the optimizer's step size)."""
    if column not in runs:
        return set()
    judged = runs[runs[column] != "n/a"]
    share = (judged[column] != "none").groupby([judged[name] for name in by]).mean()
    return {key for key, value in share.items() if value >= 0.5}


def with_variant(runs, by):
    """``by`` plus "variant" when some runs carry a variant label (analysis.load.varying_params: they
    differ in a param that the standard axes do not name), so that such runs are not grouped together."""
    has_variants = "variant" in runs and bool((runs["variant"].astype(str) != "").any())
    return (*by, "variant") if has_variants else tuple(by)


def judged_configs(runs, column="pathology_init", by=("activation", "init", "depth")):
    """The configurations ``by`` with at least one run that has a verdict in ``column`` (not "n/a":
    a run without a probe there, such as one that crashed first, is neither flagged nor healthy)."""
    if column not in runs:
        return set()
    judged = runs[runs[column] != "n/a"]
    return set(judged.groupby([judged[name] for name in by]).size().index)


def scalar_series(scalars, run_id, name):
    """(steps, values) of one run's scalar ``name`` (scalars.parquet), in step order."""
    rows = scalars[(scalars["run_id"] == run_id) & (scalars["name"] == name)].sort_values("step")
    return rows["step"].to_numpy(), rows["value"].to_numpy(np.float64)


def summary_table(runs, layer_stats):
    """One row per run: configuration, outcome, final metrics and the log10 gradient
    ratio at init (layer 1 over layer L), the content of reports/summary.csv."""
    summary = runs.copy()
    summary["log10_grad_ratio_init"] = summary["run_id"].map(grad_ratio(layer_stats, runs, INIT))
    return summary


def histogram_std(histograms):
    """Std of each histogram (run_id, step, layer, kind), from bin centres and counts."""
    if histograms.empty:
        return pd.DataFrame({"run_id": pd.Series(dtype="str"), "step": pd.Series(dtype="int64"),
                             "layer": pd.Series(dtype="int64"), "kind": pd.Series(dtype="str"),
                             "std": pd.Series(dtype="float64")})
    centre = (histograms["left"] + histograms["right"]) / 2
    weighted = histograms.assign(c=histograms["count"], cx=histograms["count"] * centre,
                                 cxx=histograms["count"] * centre * centre)
    sums = weighted.groupby(["run_id", "step", "layer", "kind"], as_index=False)[["c", "cx", "cxx"]].sum()
    counts = sums["c"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums["cx"] / counts
        variance = np.maximum(sums["cxx"] / counts - mean * mean, 0.0)
    sums["std"] = np.sqrt(variance)
    return sums[["run_id", "step", "layer", "kind", "std"]]
