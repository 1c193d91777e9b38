"""The report's title, and where its runs came from."""
from .section import TextSection


def source_line(frames, n_runs):
    """Where the runs came from, and how many (``n_runs``), in one sentence."""
    parts = []
    if frames.experiment:
        parts.append(f"experiment `{frames.experiment}`")
    if frames.sweep:
        parts.append(f"sweep `{frames.sweep}`")
    if frames.parent_run_id:
        parts.append(f"parent run `{frames.parent_run_id}`")
    where = ", ".join(parts) if parts else "the given frames"
    return f"Source: {where}; {n_runs} runs."


def title_lines(report):
    n_runs = len(report.frames.runs) + len(report.recurrent_frames.runs)
    return ["# Vanishing and exploding gradients: sweep report", "", source_line(report.frames, n_runs),
            "Every number in this report is computed from the logged runs by `python -m "
            "analysis.report`; [summary.csv](summary.csv) has one row per run."]


SECTION = TextSection("", title_lines)
