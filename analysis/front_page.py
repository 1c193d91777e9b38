"""The sweep's parent run as a front page in the MLflow UI.

  note_content(blocks, ...)     the run's description (tag mlflow.note.content): the report's at-a-glance
                                blocks (analysis.blocks), whatever they hold, with their links rewritten
                                to work inside the UI (run-page artifact links to report/...), and links
                                to the report
  headline_metrics(frames)      a few numbers of the sweep, as metrics of the parent run
"""
import re

import numpy as np

from experiments import tracking

from . import tables
from .blocks import in_section, title
from .tables import INIT

GLANCE_HEADING = "At a glance"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
SUP = re.compile(r"<sup>([^<]*)</sup>")
SUPERSCRIPT = str.maketrans("0123456789-.+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻·⁺")


def artifact_link(experiment_id, run_id, path):
    """A link inside the MLflow UI (hash route) to artifact ``path`` of a run, in the UI's
    model-training view."""
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}?{tracking.MODEL_TRAINING_VIEW}"


def ui_links(text, experiment_id, run_id, prefix="report"):
    """``text`` with relative links (and images, which a note does not embed) pointing at the run's
    artifacts under ``prefix``; absolute and in-page links are kept; <sup> becomes superscripts."""
    def rewrite(match):
        bang, label, target = match.groups()
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        return f"[{label or target}]({artifact_link(experiment_id, run_id, f'{prefix}/{target}')})"
    text = SUP.sub(lambda m: m.group(1).translate(SUPERSCRIPT), text)
    return LINK.sub(rewrite, text)


def note_content(blocks, experiment_id, run_id, sweep=""):
    """Markdown of the parent run's description: title, links to the report, the at-a-glance blocks."""
    lines = [f"## {title(blocks, 'Sweep report')}", ""]
    if sweep:
        lines += [f"Sweep `{sweep}`: its job runs are this run's children (the runs table groups them).", ""]
    lines += [f"Full report: [report.html]({artifact_link(experiment_id, run_id, 'report/report.html')}) "
              f"(figures embedded) · [report.md]({artifact_link(experiment_id, run_id, 'report/report.md')}) · "
              f"[summary.csv]({artifact_link(experiment_id, run_id, 'report/summary.csv')})", ""]
    glance = in_section(blocks, GLANCE_HEADING)
    if glance:
        lines += [f"### {GLANCE_HEADING}", "", "\n\n".join(ui_links(block.markdown, experiment_id, run_id)
                                                             for block in glance)]
    return "\n".join(lines) + "\n"


def headline_metrics(frames):
    """{name: value} of the sweep's headline numbers (NaN-free): run counts, validation accuracy,
    and the log10 first-to-last gradient ratio at init at the largest depth."""
    runs = frames.runs
    if runs.empty:
        return {}
    metrics = {"runs": len(runs), "runs_diverged": int((runs["outcome"] == "diverged").sum()),
               "max_depth": int(runs["depth"].max())}
    accuracy = runs["acc/val"].to_numpy(np.float64)
    if np.isfinite(accuracy).any():
        metrics.update({"acc_val/best": float(np.nanmax(accuracy)), "acc_val/median": float(np.nanmedian(accuracy))})
    deepest = runs[runs["depth"] == runs["depth"].max()]
    ratios = tables.grad_ratio(frames.layer_stats, deepest, INIT).to_numpy(np.float64)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size:
        metrics.update({"log10_grad_ratio_init/deepest_min": float(ratios.min()),
                        "log10_grad_ratio_init/deepest_max": float(ratios.max())})
    return metrics
