"""The diagnosis of one recurrent job through time: the MLP's flags over time steps instead of
layers, and the trainability verdict of a regression.

Flags of stacked layer k at time step t = 1..T (from ``nncore.probes_recurrent``'s statistics of
one probe), with nncore.diagnosis's thresholds and for its reasons, the last step T playing the
part of the top hidden layer (the readout sees h_T: the error enters there and flows back in time):

  vanishing   delta_ms_t, the mean square of the per-example dL/dh_t, is below delta_ms_T by more
              than e^DEPTH_SCALES: step t lies more than DEPTH_SCALES time scales -1/ln chi before
              the last step (the depth scale of Schoenholz et al. 2017, counted in steps).
  exploding   it is above delta_ms_T by more than e^DEPTH_SCALES, or a statistic of the step is not
              finite (overflow).
  saturated   more than SATURATED of the step's unit-examples (rnn: of phi', gated cells: of their
              gates' slopes) are below 10% of the maximum slope.

Where delta_ms_T is 0 or not finite, the reference is the nearest earlier step with a positive
value (all NaN without one), as nncore.diagnosis does for a dead top layer. The MLP's other flags
need statistics that are properties of weights, not of steps (dead units over the whole probe,
symmetric units, the update's size against W): they are not raised through time.

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
from nncore.probes_recurrent import layer_and_time, time_layer

from . import record
from .record import DIAGNOSIS_COLUMNS, DIAGNOSIS_FILE

TIME_FLAGS = ("vanishing", "exploding", "saturated")
# Trained below 6% of the baseline MSE: 0.01 on the adding problem (baseline 1/6), the threshold
# at which Arjovsky et al. 2016 and Le et al. 2015 call it solved.
TRAINED_FRACTION = 0.06
REQUIRED = ("delta_ms", "saturation")


def flags_through_time(delta_ms, saturation):
    """{flag: bool array (K, T)} from the (K, T) arrays of one probe (see the module docstring)."""
    delta_ms = np.asarray(delta_ms, dtype=np.float64)
    saturation = np.asarray(saturation, dtype=np.float64)
    if delta_ms.ndim != 2 or saturation.shape != delta_ms.shape:
        raise ValueError(f"delta_ms and saturation must be (layers, T) arrays of one shape, got {delta_ms.shape} "
                         f"and {saturation.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ln_delta = np.log(delta_ms)
    relative = np.full_like(ln_delta, np.nan)
    for k, row in enumerate(ln_delta):
        finite = np.flatnonzero(np.isfinite(row))
        if finite.size:
            relative[k] = row - row[finite[-1]]
    finite = np.isfinite(delta_ms) & np.isfinite(saturation)
    with np.errstate(invalid="ignore"):
        return {"vanishing": finite & (relative < -diagnosis.DEPTH_SCALES),
                "exploding": ~finite | (finite & (relative > diagnosis.DEPTH_SCALES)),
                "saturated": finite & (saturation > diagnosis.SATURATED)}


def regression_trainability(diverged, final_mse, baseline_mse):
    """"diverged", "trained" or "stalled" (see the module docstring); "n/a" without a finite MSE."""
    if diverged:
        return "diverged"
    if not (np.isfinite(final_mse) and np.isfinite(baseline_mse)):
        return "n/a"
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
    return the tags {pathology_init, pathology_final, trainability, and majority_rate or baseline_mse}
    of a finished recurrent job."""
    frames, tags = [], {}
    steps = sorted(set(layer_stats["step"]))
    for column, step in (("pathology_init", steps[0] if steps else None),
                         ("pathology_final", steps[-1] if steps else None)):
        if step is None:
            tags[column] = "n/a"
            continue
        flags = flags_through_time(*(_arrays_at(layer_stats, step, stat) for stat in REQUIRED))
        tags[column] = diagnosis.flag_set(flags)
        K, T = flags["vanishing"].shape
        codes = time_layer(np.repeat(np.arange(1, K + 1), T), np.tile(np.arange(1, T + 1), K))
        for flag in TIME_FLAGS:
            frames.append(pd.DataFrame({"step": step, "layer": codes, "flag": flag, "raised": flags[flag].ravel()}))
    table = (pd.concat(frames, ignore_index=True) if frames else
             pd.DataFrame({k: pd.Series(dtype=v) for k, v in DIAGNOSIS_COLUMNS.items()})).astype(DIAGNOSIS_COLUMNS)
    table.to_parquet(output_dir / DIAGNOSIS_FILE, index=False)
    val = scalars[scalars["name"] == record.LOSS_VAL].sort_values("step")["value"].to_numpy()
    if result.steps == 0 and not result.diverged:  # train.epochs=0: the initialization only, nothing to judge
        tags["trainability"] = "n/a"
    elif data.task == "regression":
        tags["trainability"] = regression_trainability(result.diverged, float(val[-1]) if val.size else np.nan,
                                                       data.baseline_mse)
    if data.task == "regression":
        tags["baseline_mse"] = f"{data.baseline_mse:.6g}"
        return tags
    loss = scalars[scalars["name"] == record.LOSS_TRAIN].sort_values("step")["value"].to_numpy()
    acc = scalars[scalars["name"] == record.ACC_VAL].sort_values("step")["value"].to_numpy()
    majority = diagnosis.majority_rate(data.y_val)
    if "trainability" not in tags:
        tags["trainability"] = diagnosis.trainability(result.diverged, float(acc[-1]) if acc.size else np.nan,
                                                      majority,
                                                      float(loss[0]) if loss.size else np.nan,
                                                      float(loss[-1]) if loss.size else np.nan)
    tags["majority_rate"] = f"{majority:.6g}"
    return tags
