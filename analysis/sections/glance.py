"""The report's at-a-glance section: the grid, the verdicts counted, the headline sentences of the
figure sections, the key numbers at the largest depth and how each pathology at initialization ended.
The parent run's description is this section (analysis.front_page)."""
import numpy as np
import pandas as pd

from .. import diagnosis, figures, observations, recurrent, tables
from ..tables import INIT
from . import grad_norm, outcome_map, training_curves
from .section import TextSection

NAME = "At a glance"


def _values(series):
    """Sorted distinct values, comma-separated."""
    return ", ".join(str(value) for value in sorted(series.unique()))


def _varying(frames):
    """"; also varying: optimizer.lr 0.05, 50; ..." for the params that vary among runs of the same
    activation, init, depth, optimizer, seed and dataset (analysis.load.varying_params), else ""."""
    varying = getattr(frames, "varying", None) or {}
    if not varying:
        return ""
    return ("; also varying: " + "; ".join(f"{key} {', '.join(values)}" for key, values in varying.items())
            + " (the sentences and tables name and group runs by these values too; the figures pool them)")


def _reused_runs(frames):
    """"; k of the n runs come from other sweeps (...)" when a sweep's grid points were run by other
    sweeps or single runs (the sweep skipped them: already FINISHED), else ""."""
    if not frames.sweep:
        return ""
    other = frames.runs.loc[frames.runs["sweep"] != frames.sweep, "sweep"]
    if other.empty:
        return ""
    by_sweep = ", ".join(f"`{sweep}`: {count}" for sweep, count in sorted(other.value_counts().items()) if sweep)
    single = int((other == "").sum())
    sources = ([f"other sweeps ({by_sweep})"] if by_sweep else []) + ([f"single runs ({single})"] if single else [])
    return f"; {len(other)} of the {len(frames.runs)} runs come from {' and '.join(sources)}"


def _no_verdict(runs):
    """"; no verdict for k run(s): j FAILED, ..." for the runs whose trainability is n/a, else ""."""
    reasons = diagnosis.no_verdict_reasons(runs)
    if not reasons:
        return ""
    return (f"; no verdict for {sum(reasons.values())} run(s): "
            + ", ".join(f"{count} {reason}" for reason, count in reasons.items()))


def at_a_glance(frames):
    """Bullet points: the grid, the verdicts of the diagnosis, the headline numbers."""
    frames = diagnosis.with_diagnosis(frames)
    runs = frames.runs
    if runs.empty:
        return ["- No runs: nothing to report."]
    outcomes = runs["outcome"].value_counts()
    trainability = runs["trainability"].value_counts() if "trainability" in runs else pd.Series(dtype="int64")
    bullets = [
        f"- Grid: activations {_values(runs['activation'])}; initializations {_values(runs['init'])}; "
        f"depths {_values(runs['depth'])}; optimizers {_values(runs['optimizer'])}; "
        f"seeds {_values(runs['seed'])}; dataset {_values(runs['dataset'])}{_varying(frames)}{_reused_runs(frames)}.",
        "- Trainability: " + ", ".join(f"{trainability.get(name, 0)} {name}" for name in diagnosis.core.TRAINABILITY)
        + " (outcome tag: " + ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()) + ")"
        + _no_verdict(runs) + ".",
    ]
    if "pathology_init" in runs:
        for column, label in (("pathology_init", "at initialization"), ("pathology_final", "at the last probe")):
            counts = runs[column].value_counts()
            bullets.append(f"- Diagnosis {label}: " + ", ".join(f"{count} {name}" for name, count in counts.items())
                           + " (runs; flags raised in any hidden layer).")
        counts = runs["budget_init"].value_counts()
        bullets.append("- Budget (frozen: the run's optimizer steps could not lower the loss by 1% through a layer, "
                       "judged on the gradients at initialization; n/a: not judged): "
                       + ", ".join(f"{count} {name}" for name, count in counts.items()) + " (runs).")
    headlines = [grad_norm.grad_init_observations(frames.layer_stats, runs)[0],
                 observations.diagnosis_headline(runs),
                 outcome_map.best_and_worst(runs), training_curves.optimizer_summary(runs)]
    return bullets + [f"- {sentence}" for sentence in headlines if sentence]


def _cell_pathology(group):
    """The pathology-at-init tags of a configuration's runs: one value, or each with its optimizer."""
    values = group["pathology_init"].unique()
    if len(values) == 1:
        return values[0]
    parts = []
    for value, rows in group.groupby("pathology_init"):
        parts.append(f"{value} ({', '.join(sorted(rows['optimizer'].unique()))})")
    return "; ".join(parts)


def _cell_outcome(group):
    """Final accuracy (mean over runs that did not diverge, with the seeds' range) and trainability."""
    accuracy, n_diverged, n_runs = observations.mean_final_accuracy(group)
    if n_diverged == n_runs:
        text = "div"
    else:
        text = f"{accuracy:.2f}" if np.isfinite(accuracy) else "n/a"
        values = group.loc[group["outcome"] != "diverged", "acc/val"].dropna()
        if len(values) > 1:
            text += f" ({values.min():.2f}–{values.max():.2f})"
    counts = group["trainability"].value_counts()
    verdict = (counts.index[0] if len(counts) == 1 else
               ", ".join(f"{count} {name}" for name, count in counts.items()))
    unfinished = group.loc[group["status"] != "FINISHED", "status"].value_counts()
    if not unfinished.empty:
        verdict += " (" + ", ".join(f"{count} {status}" for status, count in unfinished.items()) + ")"
    return f"{text}, {verdict}"


def key_numbers_table(frames):
    """Markdown table at the largest depth: per activation x init, the log10 gradient ratio at
    init, the pathology at init, and per optimizer the final validation accuracy and trainability."""
    runs = frames.runs
    if runs.empty:
        return []
    depth = int(runs["depth"].max())
    deepest = runs[runs["depth"] == depth]
    by = tables.with_variant(deepest, ("activation", "init"))
    ratios = tables.config_ratio(tables.grad_ratio(frames.layer_stats, deepest, INIT), deepest, by=by)
    optimizers = sorted(deepest["optimizer"].unique())
    seeds = figures.seed_count(runs)
    header = ["activation", "init", "log10 grad ratio at init", "pathology at init",
              *[f"{name}: acc/val, trainability" for name in optimizers]]
    spread = f" (in brackets the range over {seeds} seeds)" if seeds > 1 else ""
    lines = [f"At the largest depth ({depth}), per activation × init: the pathology the diagnosis finds at "
             "initialization, and per optimizer the final validation accuracy (mean over runs that did not "
             f"diverge{spread}; \"div\" when all diverged) and the trainability.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in ratios.iterrows():
        config = deepest[np.logical_and.reduce([deepest[name] == row[name] for name in by])]
        cells = [row["activation"], row["init"] + observations.variant_text(row),
                 f"{row['value']:.2f}" if np.isfinite(row["value"]) else "n/a", _cell_pathology(config)]
        for optimizer in optimizers:
            group = config[config["optimizer"] == optimizer]
            cells.append(_cell_outcome(group) if not group.empty else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def pathology_table(frames):
    """Markdown table: how often each pathology at init ends trained, stalled or diverged."""
    runs = frames.runs
    if runs.empty or "pathology_init" not in runs:
        return []
    counts = diagnosis.pathology_counts(runs)
    lines = ["How often each pathology at initialization (the set of flags over a run's hidden layers) "
             "ends trained, stalled or diverged (runs):", "",
             "| pathology at init | " + " | ".join(counts.columns) + " | runs |", "|---|" + "---|" * (len(counts.columns) + 1)]
    for name, row in counts.iterrows():
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + f" | {int(row.sum())} |")
    lines += ["", *[f"- {sentence}" for sentence in observations.pathology_observations(runs)]]
    return lines


def glance_lines(report):
    """The section: the MLP runs' bullets and tables, the recurrent runs' bullets (alone when the report
    has no MLP runs)."""
    recurrent_bullets = recurrent.at_a_glance(report.recurrent_frames)
    if not report.has_mlp_sections:
        return [f"## {NAME}", "", *recurrent_bullets]
    frames = report.frames
    return [f"## {NAME}", "", *at_a_glance(frames), *recurrent_bullets, "", *key_numbers_table(frames), "",
            *pathology_table(frames)]


SECTION = TextSection(NAME, glance_lines)
