"""The diagnosis of ``nncore.diagnosis`` on the long-format tables of an analysis.

    flags = layer_flags(layer_stats, runs, scalars)    # run_id, when, step, layer, flag, raised
    runs = with_verdicts(runs, layer_stats, scalars)   # + pathology_init, pathology_final, trainability

The job computes the same verdicts from the same numbers and tags its run with them; the
report recomputes them here so that every run, including those logged before the tags
existed, is judged the same way. Each run is diagnosed at step 0 and at its last logged
probe (for a diverged run, its last finite probe), with the run's step count taken as its
last logged step (for a run that finished: its number of optimizer steps). A run that did not
finish, or logged no scalars, has no trainability verdict ("n/a"), as a run without a probe at a
step has no pathology verdict there.
"""
from dataclasses import replace

import numpy as np
import pandas as pd

from experiments import record
from nncore import diagnosis as core

from .tables import FINAL, INIT

FLAG_COLUMNS = {"run_id": "str", "when": "str", "step": "int64", "layer": "int64", "flag": "str", "raised": "bool"}
VERDICT_COLUMNS = ("pathology_init", "pathology_final", "trainability")
NO_DATA = "n/a"  # a run without probes at a step: no verdict


def _fan(run, n_layers):
    """Entries of each W_l: sizes [n_in, width * depth, n_out] (digits' 64 and 10 when not logged)."""
    n_in = int(run["n_in"]) if np.isfinite(run.get("n_in", np.nan)) else 64
    n_out = int(run["n_out"]) if np.isfinite(run.get("n_out", np.nan)) else 10
    sizes = [n_in] + [int(run["width"])] * (n_layers - 1) + [n_out]
    return np.array([sizes[i] * sizes[i + 1] for i in range(n_layers)], dtype=np.float64)


def _momentum(run):
    value = run.get("momentum", np.nan)
    return float(value) if value is not None and np.isfinite(value) else 0.0


def diagnose_run(run, stats, loss, steps):
    """nncore.diagnosis.diagnose for one run (a row of the runs table), one probe's
    {stat: array over layers} and its loss; None when the run's learning rate is unknown."""
    lr = run.get("lr", np.nan)
    if not (lr is not None and np.isfinite(lr) and lr > 0):
        return None
    n_layers = len(stats["grad_norm"])
    return core.diagnose(stats, loss, int(steps), float(lr), optimizer=run["optimizer"], momentum=_momentum(run),
                         fan=_fan(run, n_layers))


def _probes(layer_stats):
    """({(run_id, when): (step, {stat: array over layers})} at step 0 and each run's last
    logged step, {run_id: last step})."""
    wanted = core.REQUIRED + core.OPTIONAL
    needed = layer_stats[layer_stats["stat"].isin(wanted)]
    if needed.empty:
        return {}, {}
    last_steps = needed.groupby("run_id")["step"].max()
    last = needed["run_id"].map(last_steps)
    picked = needed[(needed["step"] == 0) | (needed["step"] == last)]
    picked = picked.drop_duplicates(["run_id", "step", "layer", "stat"])
    wide = picked.set_index(["run_id", "step", "layer", "stat"])["value"].unstack("stat").sort_index()
    if any(stat not in wide for stat in core.REQUIRED):
        return {}, last_steps.to_dict()
    present = [stat for stat in wanted if stat in wide]
    values = wide[present].to_numpy(np.float64)
    keys = wide.index.droplevel("layer")
    layers = wide.index.get_level_values("layer").to_numpy()
    # rows of one (run_id, step) are consecutive after sort_index
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    out = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        run_id, step = keys[lo]
        if not np.array_equal(layers[lo:hi], np.arange(1, hi - lo + 1)):
            continue  # a layer is missing: no verdict for this probe
        stats = {stat: values[lo:hi, i] for i, stat in enumerate(present)}
        whens = ([INIT] if step == 0 else []) + ([FINAL] if step == last_steps[run_id] else [])
        for when in whens:
            out[(run_id, when)] = (int(step), stats)
    return out, last_steps.to_dict()


def layer_flags(layer_stats, runs, scalars):
    """Long table (run_id, when, step, layer, flag, raised) over hidden layers, at init and final;
    the probe losses (loss/train) come from ``scalars``."""
    probes, last_steps = _probes(layer_stats)
    probe_loss = scalars[scalars["name"] == record.LOSS_TRAIN].drop_duplicates(["run_id", "step"])
    probe_loss = dict(zip(zip(probe_loss["run_id"], probe_loss["step"]), probe_loss["value"].to_numpy(np.float64)))
    columns = {name: [] for name in FLAG_COLUMNS}
    for run in runs.to_dict("records"):
        for when in (INIT, FINAL):
            found = probes.get((run["run_id"], when))
            if found is None:
                continue
            step, stats = found
            loss = probe_loss.get((run["run_id"], step), np.nan)
            flags = diagnose_run(run, stats, loss, last_steps[run["run_id"]])
            if flags is None:
                continue
            n_hidden = len(stats["grad_norm"]) - 1
            for flag in core.FLAGS:
                columns["run_id"].append(np.full(n_hidden, run["run_id"], dtype=object))
                columns["when"].append(np.full(n_hidden, when, dtype=object))
                columns["step"].append(np.full(n_hidden, step))
                columns["layer"].append(np.arange(1, n_hidden + 1))
                columns["flag"].append(np.full(n_hidden, flag, dtype=object))
                columns["raised"].append(flags[flag])
    if not columns["run_id"]:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in FLAG_COLUMNS.items()})
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()}).astype(FLAG_COLUMNS)


def pathologies(flags):
    """DataFrame run_id -> pathology_init, pathology_final (the flag_set tag of each step)."""
    out = {}
    for when, column in ((INIT, "pathology_init"), (FINAL, "pathology_final")):
        at = flags[flags["when"] == when]
        raised = at[at["raised"]]
        names = raised.groupby("run_id")["flag"].agg(lambda found: ",".join(sorted(set(found))))
        out[column] = names.reindex(at["run_id"].unique()).fillna("none")
    return pd.DataFrame(out)


def _probe_losses(scalars):
    """(loss/train at step 0, loss/train at the last step) per run_id."""
    loss = scalars[scalars["name"] == record.LOSS_TRAIN].sort_values("step")
    grouped = loss.groupby("run_id")["value"]
    first = loss[loss["step"] == 0].groupby("run_id")["value"].first()
    return first, grouped.last()


def majority(run):
    """The run's majority-class rate of its validation labels (tag majority_rate); runs logged
    before the tag: 1 / n_out (balanced classes, as digits' stratified split nearly is)."""
    value = run.get("majority_rate", np.nan)
    if value is not None and np.isfinite(value):
        return float(value)
    n_out = run.get("n_out", np.nan)
    return 1.0 / float(n_out) if n_out is not None and np.isfinite(n_out) and n_out > 0 else np.nan


def trainability(runs, scalars):
    """Series run_id -> trained / stalled / diverged (nncore.diagnosis.trainability), or n/a for a
    run that did not finish or logged no scalars: nncore leaves out each criterion it cannot
    measure, so a run that crashed before measuring anything would read as trained."""
    initial, final = _probe_losses(scalars)
    logged = set(scalars["run_id"].astype(str).unique())
    verdicts = {}
    for run in runs.to_dict("records"):
        run_id = run["run_id"]
        if run["status"] != "FINISHED" or run_id not in logged:
            verdicts[run_id] = NO_DATA
            continue
        verdicts[run_id] = core.trainability(
            run["outcome"] == "diverged", float(run["acc/val"]), majority(run),
            float(initial.get(run_id, np.nan)), float(final.get(run_id, np.nan)))
    return pd.Series(verdicts, name="trainability", dtype="str")


def no_verdict_reasons(runs):
    """{reason: count} of the runs whose trainability is n/a: their status when they did not
    finish (FAILED, KILLED, RUNNING), else "no scalars"."""
    if "trainability" not in runs:
        return {}
    unjudged = runs[runs["trainability"] == NO_DATA]
    reasons = unjudged["status"].where(unjudged["status"] != "FINISHED", "no scalars")
    return {reason: int(count) for reason, count in reasons.value_counts().sort_index().items()}


def with_verdicts(runs, layer_stats, scalars, flags=None):
    """``runs`` with the columns pathology_init, pathology_final and trainability ("n/a" when
    a run has no probe at that step)."""
    flags = layer_flags(layer_stats, runs, scalars) if flags is None else flags
    table = pathologies(flags)
    out = runs.copy()
    for column in ("pathology_init", "pathology_final"):
        out[column] = out["run_id"].map(table[column]).astype(object).fillna(NO_DATA).astype("str")
    out["trainability"] = out["run_id"].map(trainability(runs, scalars)).astype(object).fillna(NO_DATA).astype("str")
    return out


def flagged_layers(flags, run_id, when, flag):
    """The hidden layers of ``run_id`` that carry ``flag`` at ``when`` (sorted list of ints)."""
    rows = flags[(flags["run_id"] == run_id) & (flags["when"] == when) & (flags["flag"] == flag) & flags["raised"]]
    return sorted(int(layer) for layer in rows["layer"])


def with_diagnosis(frames):
    """``frames`` with the per-layer flags (``frames.flags``) and the runs' verdict columns;
    a note names the runs whose majority-class rate was not logged (1 / n_out assumed)."""
    if frames.flags is not None:
        return frames
    flags = layer_flags(frames.layer_stats, frames.runs, frames.scalars)
    runs = with_verdicts(frames.runs, frames.layer_stats, frames.scalars, flags)
    notes = list(frames.notes)
    untagged = int(runs["majority_rate"].isna().sum()) if "majority_rate" in runs else len(runs)
    if untagged:
        notes.append(f"{untagged} run(s) logged no majority_rate tag: trainability assumes 1/n_out "
                     "(balanced classes) for them")
    return replace(frames, runs=runs, flags=flags, notes=notes)


def pathology_counts(runs):
    """Table pathology_init (rows) x trainability (columns: trained, stalled, diverged, and n/a when
    a run has no trainability verdict): run counts."""
    table = pd.crosstab(runs["pathology_init"], runs["trainability"])
    columns = list(core.TRAINABILITY) + ([NO_DATA] if NO_DATA in table.columns else [])
    return table.reindex(columns=columns, fill_value=0)
