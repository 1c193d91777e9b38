"""The report: figures, summary.csv and report.md for one sweep, logged back to MLflow.

    python -m analysis.report [--experiment NAME] [--sweep ID | --study NAME | --all-runs]
                              [--tracking-uri URI] [--out DIR] [--jobs N] [--no-log]

writes <out>/figures/*.png and *.svg, <out>/summary.csv, <out>/report.md and a self-contained
<out>/report.html (figures embedded, for MLflow's artifact viewer), then logs them under report/ in
the sweep's parent run (or in a run named "report", tag role=report, when the runs are not one
sweep), whose description becomes the report's at-a-glance section, with headline metrics.
<out> is reports/, or reports/<study>/ with --study so that a named study does not
overwrite the main report.

``build_report(frames, out_dir)`` does everything but the MLflow parts, so tests
and notebooks can build a report from any Frames. Every observation in report.md
is computed from the frames (see analysis.observations).
"""
import argparse
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import diagnosis, figures, front_page, observations, recurrent, tables
from .blocks import blocks_of, to_html, to_markdown
from .sections import SECTIONS, SECTIONS_BY_NAME, grad_norm, outcome_map, training_curves
from .sections.section import FIGURE_DIR
from .studies import study_section
from .theory import markdown_section as theory_section, no_sizes_note, theory_frame
from .load import DEFAULT_EXPERIMENT, REPO_ROOT, SelectionError, load_frames, open_client, quoted
from .tables import INIT

DEFAULT_OUT = REPO_ROOT / "reports"


def _values(series):
    """Sorted distinct values, comma-separated."""
    return ", ".join(str(value) for value in sorted(series.unique()))


def source_line(frames):
    """Where the runs came from, in one sentence."""
    parts = []
    if frames.experiment:
        parts.append(f"experiment `{frames.experiment}`")
    if frames.sweep:
        parts.append(f"sweep `{frames.sweep}`")
    if frames.parent_run_id:
        parts.append(f"parent run `{frames.parent_run_id}`")
    where = ", ".join(parts) if parts else "the given frames"
    return f"Source: {where}; {len(frames.runs)} runs."


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


GLANCE = "At a glance"
THEORY = "Theory vs measurement"
RECURRENT = "Recurrent networks"
NOTES = "Data notes"


def report_blocks(frames, study_blocks=(), recurrent_frames=None, recurrent_lines=()):
    """The report as blocks (analysis.blocks; the figures are expected in figures/); ``study_blocks``
    is a named experiment's own section, placed first. Recurrent runs (``recurrent_frames``, else
    split from ``frames``) get their at-a-glance lines and ``recurrent_lines``
    (analysis.recurrent.section); the MLP sections cover the MLP runs, and are left out when there
    are none."""
    if recurrent_frames is None:
        frames, recurrent_frames = recurrent.split(frames)
    frames = diagnosis.with_diagnosis(frames)
    everything = len(frames.runs) + len(recurrent_frames.runs)
    glance = recurrent.at_a_glance(recurrent_frames)
    if not frames.runs.empty or not glance:
        glance = at_a_glance(frames) + glance
    blocks = blocks_of("", ["# Vanishing and exploding gradients: sweep report", "",
                            source_line(frames).replace(f"; {len(frames.runs)} runs.", f"; {everything} runs."),
                            "Every number in this report is computed from the logged runs by `python -m "
                            "analysis.report`; [summary.csv](summary.csv) has one row per run."])
    blocks += list(study_blocks)
    if frames.runs.empty and not recurrent_frames.runs.empty:  # recurrent runs only: no MLP section
        blocks += blocks_of(GLANCE, [f"## {GLANCE}", "", *glance])
        blocks += blocks_of(RECURRENT, recurrent_lines)
        if frames.notes:
            blocks += blocks_of(NOTES, [f"## {NOTES}", "", *[f"- {note}" for note in frames.notes]])
        return blocks
    blocks += blocks_of(GLANCE, [f"## {GLANCE}", "", *glance, "", *key_numbers_table(frames), "",
                                 *pathology_table(frames)])
    section = None
    for number, figure in enumerate(SECTIONS, start=1):
        if figure.section != section:
            section = figure.section
            blocks += blocks_of(section, [f"## {section}"])
        blocks += figure.blocks(number, frames)
    blocks += blocks_of(THEORY, theory_section(frames.layer_stats, frames.runs))
    blocks += blocks_of(RECURRENT, recurrent_lines)
    notes = [*frames.notes, *[note for note in (no_sizes_note(frames.runs),) if note]]
    if notes:
        blocks += blocks_of(NOTES, [f"## {NOTES}", "", *[f"- {note}" for note in notes]])
    return blocks


def build_markdown(frames, study_blocks=(), recurrent_frames=None, recurrent_lines=()):
    """The text of report.md (report_blocks rendered as markdown)."""
    return to_markdown(report_blocks(frames, study_blocks, recurrent_frames, recurrent_lines))


MAX_JOBS = 4                  # figure drawing is CPU-bound; more workers than this buy little
_worker_inputs = {}           # set once per worker process by _start_worker


def default_jobs():
    """Worker processes for drawing: the usable cores, at most MAX_JOBS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_JOBS, usable))


def _start_worker(frames, theory):
    _worker_inputs.update(frames=frames, theory=theory)


def _draw_and_save(name, figure_dir, frames=None, theory=None):
    """Draw figure ``name`` and save it; in a worker the inputs come from _start_worker."""
    if frames is None:
        frames, theory = _worker_inputs["frames"], _worker_inputs["theory"]
    fig = SECTIONS_BY_NAME[name].draw(frames, theory)
    return figures.save_figure(fig, figure_dir, name)  # the figure is freed on return


def worker_context():
    """How the drawing workers start: forked from this process (the plotting stack already imported,
    the frames inherited, not pickled) where fork is safe, i.e. on Linux from a single-threaded
    process such as `make report`; spawned otherwise (macOS, or a process with threads, which a fork
    could copy while they hold a lock)."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class FigureDrawer:
    """Draws and saves every figure (PNG and SVG) while the ``with`` block runs.

    Drawing and laying out the figures is most of the report's time and each figure
    is independent, so with ``jobs`` > 1 they are drawn in that many worker processes
    (worker_context) while the block computes the text. Leaving the block waits for
    them; ``paths`` then lists the written files. With ``jobs`` = 1 everything happens
    in-process.
    """

    def __init__(self, frames, figure_dir, theory=None, jobs=1, draw=True):
        self.frames, self.figure_dir, self.theory = frames, figure_dir, theory
        self.jobs = default_jobs() if jobs is None else max(1, int(jobs))
        self.names = [figure.name for figure in SECTIONS] if draw else []
        self.pool, self.pending, self.paths = None, [], []

    def __enter__(self):
        if self.jobs > 1 and self.names:
            self.pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(self.names)), mp_context=worker_context(),
                                            initializer=_start_worker, initargs=(self.frames, self.theory))
            self.pending = [self.pool.submit(_draw_and_save, name, self.figure_dir) for name in self.names]
        return self

    def __exit__(self, *exc_info):
        if self.pool is None:
            if exc_info[0] is None:
                for name in self.names:
                    self.paths += _draw_and_save(name, self.figure_dir, self.frames, self.theory)
            return False
        try:
            if exc_info[0] is None:
                for future in self.pending:
                    self.paths += future.result()
        finally:
            self.pool.shutdown(cancel_futures=True)
        return False


def write_figures(frames, figure_dir, theory=None, jobs=1):
    """Draw and save every figure; returns the written paths."""
    with FigureDrawer(frames, figure_dir, theory, jobs) as drawer:
        pass
    return drawer.paths


def build_report(frames, out_dir, theory=None, jobs=1, study=None):
    """Write figures/, summary.csv, report.md and report.html into ``out_dir`` from ``frames``
    (no MLflow needed) and return the report's blocks (analysis.blocks). ``jobs`` > 1 (or None:
    one per core) draws the figures in parallel."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = frames
    frames, recurrent_frames = recurrent.split(frames)
    frames = diagnosis.with_diagnosis(frames)
    if theory is None:
        theory = theory_frame(frames.layer_stats, frames.runs)
    # recurrent runs only: the MLP figures are left out (an empty selection still draws them, saying so)
    mlp_figures = not frames.runs.empty or recurrent_frames.runs.empty
    with FigureDrawer(frames, out_dir / FIGURE_DIR, theory, jobs, draw=mlp_figures):
        summary = tables.summary_table(frames.runs, frames.layer_stats)
        if not recurrent_frames.runs.empty:
            summary = pd.concat([summary, recurrent.summary(recurrent_frames)], ignore_index=True)
        summary.to_csv(out_dir / "summary.csv", index=False)
        (out_dir / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        study_blocks = (blocks_of(f"study {study}", study_section(study, everything, out_dir / FIGURE_DIR))
                        if study else [])
        blocks = report_blocks(frames, study_blocks, recurrent_frames,
                               recurrent.section(recurrent_frames, out_dir / FIGURE_DIR))
    (out_dir / "report.md").write_text(to_markdown(blocks))
    (out_dir / "report.html").write_text(to_html(blocks, out_dir))
    return blocks


def report_run_id(client, frames):
    """The run that receives the report: the sweep's parent, else the experiment's
    "report" run for this selection (created once, reused afterwards)."""
    if frames.parent_run_id:
        return frames.parent_run_id
    sweep_filter = f" and tags.sweep = {quoted(frames.sweep)}" if frames.sweep else ""
    existing = client.search_runs([frames.experiment_id], f"tags.role = 'report'{sweep_filter}", max_results=1,
                                  order_by=["attributes.start_time DESC"])
    if existing:
        return existing[0].info.run_id
    run = client.create_run(frames.experiment_id, run_name="report",
                            tags={"role": "report", "sweep": frames.sweep})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def log_report_to_mlflow(frames, out_dir, blocks):
    """Log figures/, report.md, report.html and summary.csv under report/ of the receiving run, make
    it the front page (description, headline metrics) and name it in the experiment's description;
    returns its run id."""
    from mlflow.entities import Metric, RunTag

    from experiments.tracking import NOTE_TAG, describe_latest_sweep
    out_dir = Path(out_dir)
    client = open_client(frames.tracking_uri, writable=True)
    run_id = report_run_id(client, frames)
    client.log_artifacts(run_id, str(out_dir / FIGURE_DIR), "report/figures")
    for name in ("report.md", "report.html", "summary.csv"):
        client.log_artifact(run_id, str(out_dir / name), "report")
    note = front_page.note_content(blocks, frames.experiment_id, run_id, frames.sweep)
    now = int(time.time() * 1000)
    # the first-to-last layer gradient ratio is an MLP's: a recurrent run's layer column is (layer, time)
    mlp_stats = recurrent.split(frames)[0].layer_stats
    headline = [Metric(name, float(value), now, 0)
                for name, value in front_page.headline_metrics(replace(frames, layer_stats=mlp_stats)).items()]
    client.log_batch(run_id, metrics=headline, tags=[RunTag(NOTE_TAG, note)])
    if frames.sweep:
        name = client.get_run(run_id).info.run_name
        describe_latest_sweep(client, frames.experiment_id, frames.sweep, run_id, name, report=True)
    return run_id


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def store_errors():
    """The exceptions of an unusable store or output directory, which main reports in one line: the
    store checks' StoreError, MLflow's and sqlalchemy's errors, and OSError (e.g. --out under a file)."""
    from mlflow.exceptions import MlflowException

    from experiments.tracking import StoreError
    try:
        from sqlalchemy.exc import SQLAlchemyError   # MLflow's sqlite store; absent with mlflow-skinny
    except ImportError:
        return StoreError, MlflowException, OSError
    return StoreError, MlflowException, SQLAlchemyError, OSError


def error_line(error):
    """One line naming the problem of ``error`` (one of store_errors)."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return first if type(error).__name__ == "StoreError" else f"{type(error).__name__}: {first}"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--sweep", default=None, help="sweep id (default: the most recent parent run's)")
    chosen.add_argument("--study", default=None, help="the latest sweep of a named study (conf/experiment/)")
    chosen.add_argument("--all-runs", action="store_true", help="every job run of the experiment")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: reports/, or reports/<study>/ with --study)")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help=f"processes drawing figures (default: one per core, at most {MAX_JOBS})")
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point; returns the exit status (2 when there is nothing to report, or the store or the
    output directory cannot be used: one line on stderr)."""
    args = parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT / args.study if args.study else DEFAULT_OUT
    started = time.perf_counter()
    try:
        frames = load_frames(args.experiment, sweep=args.sweep, all_runs=args.all_runs, study=args.study,
                             tracking_uri=args.tracking_uri)
        loaded = time.perf_counter()
        blocks = build_report(frames, args.out, jobs=args.jobs, study=args.study)
        built = time.perf_counter()
        logged_to = "" if args.no_log else log_report_to_mlflow(frames, args.out, blocks)
    except SelectionError as error:  # includes NoRunsError
        print(f"analysis.report: {error}", file=sys.stderr)
        return 2
    except store_errors() as error:  # evaluated only when something was raised: no import cost otherwise
        print(f"analysis.report: {error_line(error)}", file=sys.stderr)
        return 2
    print(f"report of {len(frames.runs)} runs in {args.out}: load {loaded - started:.1f} s, "
          f"figures and report {built - loaded:.1f} s"
          + (f", logged to run {logged_to} ({time.perf_counter() - built:.1f} s)" if logged_to else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
