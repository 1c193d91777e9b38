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

import pandas as pd

from . import diagnosis, figures, front_page, recurrent, tables
from .blocks import blocks_of, to_html, to_markdown
from .contents import CONTENTS
from .sections import SECTIONS, SECTIONS_BY_NAME
from .sections.section import FIGURE_DIR, FigureSection, ReportInput
from .theory import theory_frame
from .load import DEFAULT_EXPERIMENT, REPO_ROOT, SelectionError, load_frames, open_client, quoted

DEFAULT_OUT = REPO_ROOT / "reports"


def report_input(frames, study=None, figure_dir=None):
    """The ReportInput of ``frames``: its MLP runs (with the diagnosis) and its recurrent runs apart."""
    mlp, recurrent_frames = recurrent.split(frames)
    return ReportInput(diagnosis.with_diagnosis(mlp), recurrent_frames, frames, study, figure_dir)


def report_blocks(report):
    """The report as blocks (analysis.blocks): every section of analysis.contents.CONTENTS that applies,
    in order; the figure sections numbered, under a "## " heading whenever theirs changes (their
    figures are expected in figures/)."""
    blocks, number, heading = [], 0, None
    for part in CONTENTS:
        if not report.includes(part):
            continue
        if isinstance(part, FigureSection):
            number += 1
            if part.section != heading:
                heading = part.section
                blocks += blocks_of(heading, [f"## {heading}"])
            blocks += part.blocks(number, report.frames)
        else:
            blocks += part.blocks(report)
    return blocks


def build_markdown(frames):
    """The text of report.md of ``frames`` without a named study, its figures expected in figures/."""
    return to_markdown(report_blocks(report_input(frames)))


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


def _for_workers(frames):
    """The frames trimmed to what the figures read (the histogram figure: step 0 only), so that a
    spawned worker unpickles less."""
    return replace(frames, histograms=frames.histograms[frames.histograms["step"] == 0])


def worker_context():
    """How the drawing workers start: forked from this process (the plotting stack already imported,
    the frames inherited, not pickled) where fork is safe, i.e. on Linux from a process with no Python
    thread but the main one, such as `make report` (NumPy's and Arrow's native pools handle fork);
    spawned otherwise (macOS, or a process with Python threads, which a fork could copy while they
    hold a lock)."""
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

    def __init__(self, frames, figure_dir, theory=None, jobs=1, sections=SECTIONS):
        self.frames, self.figure_dir, self.theory = frames, figure_dir, theory
        self.jobs = default_jobs() if jobs is None else max(1, int(jobs))
        self.names = [section.name for section in sections]
        self.pool, self.pending, self.paths = None, [], []

    def __enter__(self):
        if self.jobs > 1 and self.names:
            self.pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(self.names)), mp_context=worker_context(),
                                            initializer=_start_worker, initargs=(_for_workers(self.frames), self.theory))
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
    report = report_input(frames, study, out_dir / FIGURE_DIR)
    frames, recurrent_frames = report.frames, report.recurrent_frames
    if theory is None:
        theory = theory_frame(frames.layer_stats, frames.runs)
    drawn = [section for section in SECTIONS if report.includes(section)]
    with FigureDrawer(frames, out_dir / FIGURE_DIR, theory, jobs, drawn):
        summary = tables.summary_table(frames.runs, frames.layer_stats)
        if not recurrent_frames.runs.empty:
            summary = pd.concat([summary, recurrent.summary(recurrent_frames)], ignore_index=True)
        summary.to_csv(out_dir / "summary.csv", index=False)
        (out_dir / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        blocks = report_blocks(report)
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
