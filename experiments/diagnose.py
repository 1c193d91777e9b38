"""The diagnosis of one job (nncore.diagnosis): per-layer flags at step 0 and at the last probe,
written to diagnosis.parquet, and the run's tags pathology_init, pathology_final, trainability.

diagnosis.parquet (schema in experiments.record) is long format: step, layer, flag, raised (every
hidden layer x every flag at both steps, so an absent flag is an explicit False).
"""
import numpy as np
import pandas as pd

from nncore import diagnosis

from . import record
from .record import DIAGNOSIS_COLUMNS, DIAGNOSIS_FILE


def _stats_at(layer_stats, step):
    wanted = diagnosis.REQUIRED + diagnosis.OPTIONAL
    rows = layer_stats[(layer_stats["step"] == step) & layer_stats["stat"].isin(wanted)]
    wide = rows.set_index(["layer", "stat"])["value"].unstack("stat").sort_index()
    return {stat: wide[stat].to_numpy(np.float64) for stat in wanted if stat in wide}


def _fan(net):
    return np.array([w.size for w in net.weights], dtype=np.float64)


def diagnose_job(cfg, net, layer_stats, scalars, data, result, total, output_dir):
    """Write ``output_dir``/diagnosis.parquet and return the tags {pathology_init,
    pathology_final, trainability, majority_rate} of a finished job, from its layer_stats and
    scalars tables (experiments.record's schemas)."""
    momentum = float(cfg.optimizer.get("momentum") or 0.0)
    frames, tags = [], {}
    steps = sorted(set(layer_stats["step"]))
    losses = scalars[scalars["name"] == record.LOSS_TRAIN].set_index("step")["value"].sort_index()
    for column, step in (("pathology_init", steps[0] if steps else None), ("pathology_final", steps[-1] if steps else None)):
        if step is None:
            tags[column] = "n/a"
            continue
        flags = diagnosis.diagnose(_stats_at(layer_stats, step), float(losses.get(step, np.nan)), int(total),
                                   float(cfg.optimizer.lr),
                                   optimizer=cfg.optimizer.name, momentum=momentum, fan=_fan(net))
        tags[column] = diagnosis.flag_set(flags)
        for flag in diagnosis.FLAGS:
            frames.append(pd.DataFrame({"step": step, "layer": np.arange(1, flags[flag].size + 1), "flag": flag,
                                        "raised": flags[flag]}))
    table = (pd.concat(frames, ignore_index=True) if frames else
             pd.DataFrame({k: pd.Series(dtype=v) for k, v in DIAGNOSIS_COLUMNS.items()})).astype(DIAGNOSIS_COLUMNS)
    table.to_parquet(output_dir / DIAGNOSIS_FILE, index=False)
    loss = losses.to_numpy()
    acc = scalars[scalars["name"] == record.ACC_VAL].sort_values("step")["value"].to_numpy()
    majority = diagnosis.majority_rate(data.y_val)
    tags["trainability"] = diagnosis.trainability(result.diverged, float(acc[-1]) if acc.size else np.nan, majority,
                                                  float(loss[0]) if loss.size else np.nan,
                                                  float(loss[-1]) if loss.size else np.nan)
    tags["majority_rate"] = f"{majority:.6g}"
    return tags
