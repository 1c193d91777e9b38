"""The diagnosis of one recurrent job through time, and the trainability verdict of a regression.

The flags through time are nncore.diagnosis.diagnose_through_time's (the MLP's flags over the time
steps t = 1..T of each stacked layer, relative to the last step T, with the MLP's thresholds),
computed at step 0 and at the last probe from the job's layer_stats and written to
diagnosis.parquet with the layer_stats' layer code k * 100000 + t; the tags pathology_init and
pathology_final are their flag_set, as for an MLP.

Trainability of a regression (``regression_trainability``): ``diverged`` when the loss or
gradients became non-finite; ``trained`` when the final validation MSE is below TRAINED_FRACTION
of the data's baseline MSE (the constant prediction's: adding, always 1, 1/6 in expectation,
so trained below 0.01); else ``stalled``: a network that explains less than 94% of the
baseline's error has not solved the task, however far its loss fell. A classification on
sequences (seq_digits) is judged as an MLP's (nncore.diagnosis.trainability). A run of no update
(train.epochs=0, the initialization only) has no verdict: "n/a".
"""
import numpy as np
import pandas as pd

from nncore import diagnosis
from nncore.probes_recurrent import layer_and_time, time_layers

from . import record
from .diagnose import classification_trainability, write_diagnosis

# Trained below 6% of the baseline MSE: 0.01 on the adding problem (baseline 1/6), the threshold
# at which Arjovsky et al. 2016 and Le et al. 2015 call it solved.
TRAINED_FRACTION = 0.06


def regression_trainability(diverged, final_mse, baseline_mse, steps=None):
    """"diverged", "trained" or "stalled" (see the module docstring); NOT_JUDGED without a finite MSE
    or, as nncore.diagnosis.trainability, for a run of no optimizer step (``steps`` 0)."""
    if diverged:
        return "diverged"
    if steps == 0 or not (np.isfinite(final_mse) and np.isfinite(baseline_mse)):
        return diagnosis.NOT_JUDGED
    return "trained" if final_mse < TRAINED_FRACTION * baseline_mse else "stalled"


def _arrays_at(layer_stats, step, stat):
    """The (K, T) array of ``stat`` at training step ``step`` from a recurrent run's layer_stats."""
    rows = layer_stats[(layer_stats["step"] == step) & (layer_stats["stat"] == stat)]
    k, t = layer_and_time(rows["layer"].to_numpy(np.int64))
    out = np.full((int(k.max()), int(t.max())), np.nan)
    out[k - 1, t - 1] = rows["value"].to_numpy(np.float64)
    return out


def diagnose_recurrent_job(net, layer_stats, scalars, data, result, output_dir):
    """Write ``output_dir``/diagnosis.parquet (flags through time at step 0 and at the last probe) and
    return the tags {pathology_init, pathology_final, budget_init and budget_final (n/a), trainability,
    and majority_rate or baseline_mse}
    of a finished recurrent job."""
    # The budget (frozen: what the optimizer's steps can do through a layer) is modelled on an MLP's
    # Dense layers (nncore.diagnosis.budget); it is not judged through time.
    frames, tags = [], {"budget_init": diagnosis.NOT_JUDGED, "budget_final": diagnosis.NOT_JUDGED}
    steps = sorted(set(layer_stats["step"]))
    present = set(layer_stats["stat"].unique())
    wanted = [stat for stat in diagnosis.TIME_REQUIRED + diagnosis.TIME_OPTIONAL if stat in present]
    for column, step in (("pathology_init", steps[0] if steps else None),
                         ("pathology_final", steps[-1] if steps else None)):
        if step is None:
            tags[column] = diagnosis.NOT_JUDGED
            continue
        flags = diagnosis.diagnose_through_time({stat: _arrays_at(layer_stats, step, stat) for stat in wanted})
        tags[column] = diagnosis.flag_set(flags)
        codes = time_layers(*flags["vanishing"].shape)
        for flag in diagnosis.TIME_FLAGS:
            frames.append(pd.DataFrame({"step": step, "layer": codes, "flag": flag, "raised": flags[flag].ravel()}))
    write_diagnosis(frames, output_dir)
    if data.task != "regression":
        tags.update(classification_trainability(result, scalars, data.y_val))
        return tags
    val = scalars[scalars["name"] == record.LOSS_VAL].sort_values("step")["value"].to_numpy()
    tags["trainability"] = regression_trainability(result.diverged, float(val[-1]) if val.size else np.nan,
                                                   data.baseline_mse, steps=int(result.steps))
    tags["baseline_mse"] = f"{data.baseline_mse:.6g}"
    return tags
