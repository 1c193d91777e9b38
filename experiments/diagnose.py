"""The diagnosis of one job (nncore.diagnosis), computed once, here: per-layer flags at step 0 and
at the last probe, written to diagnosis.parquet, and the run's tags (experiments.record.VERDICT_TAGS)

  pathology_init, pathology_final   the network's flags (nncore.diagnosis.FLAGS) raised in any
                                    hidden layer, "none", or "n/a" without a probe at that step
  budget_init, budget_final         the budget flags (BUDGET_FLAGS: frozen) over the run's
                                    optimizer steps at its own rule, "none", or "n/a" when not
                                    judged (train.epochs=0: no steps; no finite probe loss)
  trainability, majority_rate

diagnosis.parquet (schema in experiments.record) is long format: step, layer, flag, raised (every
hidden layer x every network flag at both steps, so an absent flag is an explicit False; the
budget flags at the steps where they were judged).
"""
import numpy as np
import pandas as pd

from nncore import diagnosis, optimizers

from . import record
from .config import optimizer_kwargs
from .record import DIAGNOSIS_COLUMNS, DIAGNOSIS_FILE


def _stats_at(layer_stats, step):
    wanted = diagnosis.REQUIRED + diagnosis.OPTIONAL + diagnosis.BUDGET_OPTIONAL
    rows = layer_stats[(layer_stats["step"] == step) & layer_stats["stat"].isin(wanted)]
    wide = rows.set_index(["layer", "stat"])["value"].unstack("stat").sort_index()
    return {stat: wide[stat].to_numpy(np.float64) for stat in wanted if stat in wide}


def _rows(step, flags):
    return [pd.DataFrame({"step": step, "layer": np.arange(1, values.size + 1), "flag": flag, "raised": values})
            for flag, values in flags.items()]


def diagnose_job(cfg, net, layer_stats, scalars, data, result, total, output_dir):
    """Write ``output_dir``/diagnosis.parquet and return the verdict tags (module docstring) of a
    finished job, from its layer_stats and scalars tables (experiments.record's schemas);
    ``total`` is the run's number of optimizer steps (0 with train.epochs=0)."""
    rule = optimizers.get(cfg.optimizer.name, **optimizer_kwargs(cfg))  # fresh: the run's rule, not its state
    fan = np.array([w.size for w in net.weights], dtype=np.float64)
    frames, tags = [], {}
    steps = sorted(set(layer_stats["step"]))
    losses = scalars[scalars["name"] == record.LOSS_TRAIN].set_index("step")["value"].sort_index()
    for when, step in (("init", steps[0] if steps else None), ("final", steps[-1] if steps else None)):
        if step is None:
            tags[f"pathology_{when}"] = tags[f"budget_{when}"] = diagnosis.NOT_JUDGED
            continue
        stats = _stats_at(layer_stats, step)
        flags = diagnosis.diagnose(stats)
        budget = diagnosis.budget(stats, float(losses.get(step, np.nan)), int(total), rule, fan)
        tags[f"pathology_{when}"] = diagnosis.flag_set(flags)
        tags[f"budget_{when}"] = diagnosis.flag_set(budget)
        frames += _rows(step, flags) + (_rows(step, budget) if budget is not None else [])
    write_diagnosis(frames, output_dir)
    tags.update(classification_trainability(result, scalars, data.y_val))
    return tags


def write_diagnosis(frames, output_dir):
    """``output_dir``/diagnosis.parquet from the job's (step, layer, flag, raised) frames, typed as
    DIAGNOSIS_COLUMNS (empty without frames); with train.epochs=0, step 0 is also the last probe and
    its rows are written once."""
    table = (pd.concat(frames, ignore_index=True) if frames else
             pd.DataFrame({k: pd.Series(dtype=v) for k, v in DIAGNOSIS_COLUMNS.items()})).astype(DIAGNOSIS_COLUMNS)
    table.drop_duplicates(["step", "layer", "flag"]).to_parquet(output_dir / DIAGNOSIS_FILE, index=False)


def classification_trainability(result, scalars, y_val):
    """{trainability, majority_rate} of a classifier's run (MLP or recurrent) from its scalars:
    nncore.diagnosis.trainability on the final validation accuracy, the probe loss's first and last
    values and the run's number of optimizer steps."""
    loss = scalars[scalars["name"] == record.LOSS_TRAIN].sort_values("step")["value"].to_numpy()
    acc = scalars[scalars["name"] == record.ACC_VAL].sort_values("step")["value"].to_numpy()
    majority = diagnosis.majority_rate(y_val)
    verdict = diagnosis.trainability(result.diverged, float(acc[-1]) if acc.size else np.nan, majority,
                                     float(loss[0]) if loss.size else np.nan, float(loss[-1]) if loss.size else np.nan,
                                     steps=int(result.steps))
    return {"trainability": verdict, "majority_rate": f"{majority:.6g}"}
