"""The jobs' diagnosis (experiments.diagnose), as an analysis reads it.

    frames = with_diagnosis(frames)   # runs with the verdict columns, frames.flags per layer

Each job judges its run once, with nncore.diagnosis, and records the verdicts as run tags
(experiments.record.VERDICT_TAGS: pathology_init, pathology_final, budget_init, budget_final,
trainability) and its per-layer flags as diagnosis.parquet; analysis.load puts the tags in the
runs table and the Parquet tables in ``frames.diagnosis``. Here they are read, not recomputed.

Runs logged before the job recorded budget_init have pathology tags of another meaning (the
optimizer's step then entered vanishing and exploding), or none. For them alone the network's
flags are recomputed from their layer_stats with the same nncore.diagnosis.diagnose, which needs
the statistics and nothing else; their budget is not judged ("n/a"); a note counts them and says
what to re-run. Their trainability is the tag when they have it, else nncore.diagnosis.trainability
on their scalars (majority-class rate 1/n_out when the run logged none, noted). A run that did not
finish, or logged no scalars, has no recomputed trainability verdict ("n/a"), as a run without a
probe at a step has no pathology verdict there.
"""
from dataclasses import replace

import numpy as np
import pandas as pd

from experiments import record
from nncore import diagnosis as core

from .tables import FINAL, INIT

FLAG_COLUMNS = {"run_id": "str", "when": "str", "step": "int64", "layer": "int64", "flag": "str", "raised": "bool"}
VERDICT_COLUMNS = record.VERDICT_TAGS
NO_DATA = core.NOT_JUDGED  # a run without probes at a step: no verdict


def _budget_tag(value):
    """True for a value the job writes as budget_init: "none", "n/a" or budget flags."""
    if not isinstance(value, str) or not value:
        return False
    return value in ("none", NO_DATA) or all(part in core.BUDGET_FLAGS for part in value.split(","))


def diagnosed_by_job(runs):
    """Boolean Series over ``runs``: the run carries the job's diagnosis (its budget_init tag)."""
    if "budget_init" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["budget_init"].map(_budget_tag).astype(bool)


def _empty_flags():
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in FLAG_COLUMNS.items()})


def job_flags(table, run_ids):
    """The jobs' diagnosis.parquet rows of ``run_ids`` in FLAG_COLUMNS: ``when`` is init at a run's
    first step (0) and final at its last (both for a run without optimizer steps)."""
    if table is None or table.empty:
        return _empty_flags()
    rows = table[table["run_id"].astype(str).isin(set(run_ids))].astype({"run_id": "str", "flag": "str"})
    if rows.empty:
        return _empty_flags()
    first = rows.groupby("run_id")["step"].transform("min")
    last = rows.groupby("run_id")["step"].transform("max")
    parts = [rows[rows["step"] == first].assign(when=INIT), rows[rows["step"] == last].assign(when=FINAL)]
    return pd.concat(parts, ignore_index=True)[list(FLAG_COLUMNS)].astype(FLAG_COLUMNS)


def _probes(layer_stats, run_ids):
    """{(run_id, when): (step, {stat: array over layers})} at step 0 and at each run's last
    logged step, for the runs ``run_ids``."""
    wanted = core.REQUIRED + core.OPTIONAL
    needed = layer_stats[layer_stats["stat"].isin(wanted) & layer_stats["run_id"].astype(str).isin(set(run_ids))]
    if needed.empty:
        return {}
    last_steps = needed.groupby("run_id", observed=True)["step"].max()
    last = needed["run_id"].map(last_steps).astype("int64")
    picked = needed[(needed["step"] == 0) | (needed["step"] == last)]
    picked = picked.drop_duplicates(["run_id", "step", "layer", "stat"])
    wide = picked.set_index(["run_id", "step", "layer", "stat"])["value"].unstack("stat").sort_index()
    if any(stat not in wide for stat in core.REQUIRED):
        return {}
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
            out[(str(run_id), when)] = (int(step), stats)
    return out


def recomputed_flags(layer_stats, run_ids):
    """The network's flags (nncore.diagnosis.diagnose) of ``run_ids`` from their layer_stats, in
    FLAG_COLUMNS, at step 0 and at each run's last logged step: for runs logged before the job's
    diagnosis."""
    columns = {name: [] for name in FLAG_COLUMNS}
    for (run_id, when), (step, stats) in _probes(layer_stats, run_ids).items():
        flags = core.diagnose(stats)
        n_hidden = len(stats["grad_norm"]) - 1
        for flag in core.FLAGS:
            columns["run_id"].append(np.full(n_hidden, run_id, dtype=object))
            columns["when"].append(np.full(n_hidden, when, dtype=object))
            columns["step"].append(np.full(n_hidden, step))
            columns["layer"].append(np.arange(1, n_hidden + 1))
            columns["flag"].append(np.full(n_hidden, flag, dtype=object))
            columns["raised"].append(flags[flag])
    if not columns["run_id"]:
        return _empty_flags()
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()}).astype(FLAG_COLUMNS)


def pathologies(flags):
    """DataFrame run_id -> pathology_init, pathology_final (the flag_set of the network's flags
    at each step)."""
    flags = flags[flags["flag"].isin(core.FLAGS)]
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
    grouped = loss.groupby("run_id", observed=True)["value"]
    first = loss[loss["step"] == 0].groupby("run_id", observed=True)["value"].first()
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


def with_verdicts(runs, layer_stats, scalars, job_table=None):
    """(``runs`` with the verdict columns VERDICT_COLUMNS, per-layer flags in FLAG_COLUMNS, notes):
    the job's tags and diagnosis.parquet (``job_table``) where the run has them, else the
    recomputation of the module docstring."""
    runs = runs.copy()
    for column in VERDICT_COLUMNS:
        if column not in runs:
            runs[column] = ""
    by_job = diagnosed_by_job(runs)
    old = runs[~by_job]
    flags = job_flags(job_table, runs.loc[by_job, "run_id"])
    notes = []
    if not old.empty:
        recomputed = recomputed_flags(layer_stats, old["run_id"])
        flags = pd.concat([flags, recomputed], ignore_index=True) if not flags.empty else recomputed
        table = pathologies(recomputed)
        for column in ("pathology_init", "pathology_final"):
            runs.loc[old.index, column] = old["run_id"].map(table[column]).astype(object).fillna(NO_DATA)
        runs.loc[old.index, ["budget_init", "budget_final"]] = NO_DATA
        untagged = old[~old["trainability"].isin(core.TRAINABILITY)]
        if not untagged.empty:
            judged = trainability(untagged, scalars)
            runs.loc[untagged.index, "trainability"] = untagged["run_id"].map(judged).fillna(NO_DATA)
            guessed = int(untagged["majority_rate"].isna().sum()) if "majority_rate" in untagged else len(untagged)
            if guessed:
                notes.append(f"{guessed} run(s) logged no majority_rate tag: trainability assumes 1/n_out "
                             "(balanced classes) for them")
        notes.insert(0, f"{len(old)} run(s) were logged before their job recorded its diagnosis (no budget_init "
                        "tag): their pathology verdicts are recomputed here from layer_stats (the network's flags, "
                        "nncore.diagnosis.diagnose) and their budget is not judged; re-run them "
                        "(make sweep FORCE=1 for the default study) to have every verdict from the job")
    for column in VERDICT_COLUMNS:
        runs[column] = runs[column].astype(object).fillna(NO_DATA).astype("str")
    return runs, flags.astype(FLAG_COLUMNS), notes


def flagged_layers(flags, run_id, when, flag):
    """The hidden layers of ``run_id`` that carry ``flag`` at ``when`` (sorted list of ints)."""
    rows = flags[(flags["run_id"] == run_id) & (flags["when"] == when) & (flags["flag"] == flag) & flags["raised"]]
    return sorted(int(layer) for layer in rows["layer"])


def with_diagnosis(frames):
    """``frames`` with the verdict columns in ``frames.runs``, the per-layer flags
    (``frames.flags``) and the notes of with_verdicts; unchanged when already done."""
    if frames.flags is not None:
        return frames
    runs, flags, notes = with_verdicts(frames.runs, frames.layer_stats, frames.scalars, frames.diagnosis)
    return replace(frames, runs=runs, flags=flags, notes=[*frames.notes, *notes])


def pathology_counts(runs):
    """Table pathology_init (rows) x trainability (columns: trained, stalled, diverged, and n/a when
    a run has no trainability verdict): run counts."""
    table = pd.crosstab(runs["pathology_init"], runs["trainability"])
    columns = list(core.TRAINABILITY) + ([NO_DATA] if NO_DATA in table.columns else [])
    return table.reindex(columns=columns, fill_value=0)
