"""build_report: every file, a GitHub-readable structure, and observations that
follow the data (no finding is written in advance)."""
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis import figures, report, tables
from analysis.sections import SECTIONS, SECTIONS_BY_NAME, training_curves
from analysis.blocks import to_markdown
from analysis.load import Frames
from synthetic_runs import quietly

VANISHING = {("sigmoid", "uniform"): -0.5, ("relu", "uniform"): -0.3}
BALANCED = {}  # every gain 0: the gradient norm is the same at every layer


@pytest.fixture(scope="module")
def vanishing(tmp_path_factory):
    from synthetic_runs import make_frames
    frames = make_frames(gains=VANISHING)
    out = tmp_path_factory.mktemp("vanishing")
    return frames, out, to_markdown(quietly(report.build_report, frames, out))


@pytest.fixture(scope="module")
def balanced():
    """Only the markdown: the text does not need the figures drawn."""
    from synthetic_runs import make_frames
    frames = make_frames(gains=BALANCED)
    return frames, None, quietly(report.build_markdown, frames)


def bullets_under(markdown, heading):
    """The bullet lines of the section that starts with ``heading``."""
    section = markdown.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_every_file_is_written(vanishing):
    _, out, markdown = vanishing
    names = [section.name for section in SECTIONS]
    assert len(names) == 11
    for name in names:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.svg").stat().st_size > 1000
    assert (out / "report.md").read_text() == markdown
    page = (out / "report.html").read_text()   # the same blocks, self-contained
    assert page.count("data:image/png;base64,") == len(names) and "<h2>At a glance</h2>" in page
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 24


def test_markdown_has_a_section_per_figure_with_image_caption_and_observations(vanishing):
    _, out, markdown = vanishing
    assert markdown.startswith("# ")
    assert "## At a glance" in markdown
    for number, spec in enumerate(SECTIONS, start=1):
        heading = f"### Figure {number}. {spec.heading}"
        assert heading in markdown
        assert f"![{spec.heading}](figures/{spec.name}.png)" in markdown
        section = markdown.split(heading, 1)[1].split("### ", 1)[0]
        assert re.search(r"^\*.+\* \(\[SVG\]\(figures/.+\.svg\)\)$", section, re.MULTILINE)  # caption
        assert bullets_under(markdown, heading), f"no observation under {heading}"
    # every linked file exists
    for link in re.findall(r"\]\(([^)]+)\)", markdown):
        assert (out / link).exists(), link


def test_observations_differ_between_vanishing_and_balanced_data(vanishing, balanced):
    _, _, vanishing_md = vanishing
    _, _, balanced_md = balanced
    heading = "### Figure 1. "
    assert bullets_under(vanishing_md, heading) != bullets_under(balanced_md, heading)
    # gain -0.5 per layer over 5 layers: layer 1 is 10^-2.5 of layer 6
    assert ("sigmoid + uniform, depth 5: the layer-1 gradient norm is 10⁻²·⁵ times the layer-6 "
            "(output) gradient norm at initialization") in vanishing_md
    assert "the gradient vanishes toward the input" in vanishing_md
    assert "4 of 6 activation × init pairs have first and last gradient norms within a factor 10" in vanishing_md
    assert "6 of 6 activation × init pairs have first and last gradient norms within a factor 10" in balanced_md
    assert "10⁻²·⁵" not in balanced_md


def test_healthy_depth_and_slope_are_computed(vanishing, balanced):
    _, _, vanishing_md = vanishing
    _, _, balanced_md = balanced
    # relu + uniform: -0.6 at depth 2 (within a factor 10), -1.5 at depth 5; sigmoid + uniform: -1.0 already
    # at depth 2. The diagnosis (error ratio e^-9.2 at depth 5, e^-2.3 at depth 2) flags sigmoid + uniform at 5.
    ratio_and_diagnosis = "/ no pathology at init by the diagnosis (tested up to 5): "
    assert f"relu, the largest depth up to which every tested depth has |log10 ratio| < 1 {ratio_and_diagnosis}" \
           "he_uniform 5 / 5, uniform 2 / 5" in vanishing_md
    assert f"sigmoid, the largest depth up to which every tested depth has |log10 ratio| < 1 {ratio_and_diagnosis}" \
           "he_uniform 5 / 5, uniform none / 2" in vanishing_md
    assert "sigmoid + uniform: each added layer multiplies it by about 10⁻⁰·⁵" in vanishing_md
    assert "uniform 5 / 5 and xavier_uniform 5 / 5" in balanced_md
    assert "none /" not in balanced_md


def test_outcome_observations_count_the_diverged_run(vanishing):
    frames, _, markdown = vanishing
    assert "1 of 24 runs diverged: sigmoid + uniform, depth 5, sgd." in markdown
    completed = frames.runs[frames.runs["outcome"] != "diverged"]
    best = completed["acc/val"].max()
    assert f"Best final validation accuracy: {best:.3f}" in markdown


def test_summary_csv_holds_the_gradient_ratio_at_init(vanishing):
    frames, out, _ = vanishing
    summary = pd.read_csv(out / "summary.csv").set_index("run_id")
    assert {"activation", "init", "optimizer", "depth", "outcome", "loss/train", "acc/val",
            "log10_grad_ratio_init"} <= set(summary.columns)
    np.testing.assert_allclose(summary.loc["sigmoid-uniform-d5-sgd-s0", "log10_grad_ratio_init"], -2.5)
    np.testing.assert_allclose(summary.loc["relu-he_uniform-d2-adam-s0", "log10_grad_ratio_init"], 0.0)
    assert summary.loc["sigmoid-uniform-d5-sgd-s0", "outcome"] == "diverged"


def test_an_empty_selection_still_gives_a_report(frames, tmp_path):
    empty = Frames(runs=frames.runs.iloc[0:0], layer_stats=frames.layer_stats.iloc[0:0],
                   histograms=frames.histograms.iloc[0:0], scalars=frames.scalars.iloc[0:0])
    markdown = to_markdown(quietly(report.build_report, empty, tmp_path))
    assert "No runs" in markdown
    assert len(list((tmp_path / "figures").glob("*.png"))) == 11


def test_data_notes_are_listed(frames, tmp_path):
    noted = Frames(**{**frames.__dict__, "notes": ["2 run(s) have no histograms.parquet"]})
    markdown = report.build_markdown(noted)
    assert "## Data notes" in markdown and "- 2 run(s) have no histograms.parquet" in markdown


def test_svg_output_is_deterministic(frames, tmp_path):
    """Fixed hash salt and no date: the same data gives the same file (clean diffs)."""
    for directory in ("first", "second"):
        fig = SECTIONS_BY_NAME["outcome_map"].draw(frames, None)
        figures.save_figure(fig, tmp_path / directory, "outcome_map")
    assert (tmp_path / "first" / "outcome_map.svg").read_bytes() == (tmp_path / "second" / "outcome_map.svg").read_bytes()


def test_ratio_tables_treat_non_finite_values_as_missing(frames):
    ratios = tables.grad_ratio(frames.layer_stats, frames.runs, "final")
    assert np.isnan(ratios["relu-uniform-d5-adam-s0"])        # layer-1 gradient overflowed to inf
    assert np.isfinite(ratios.drop("relu-uniform-d5-adam-s0")).all()


def test_optimizer_summary_reports_the_winner_or_a_tie(frames, vanishing):
    assert training_curves.optimizer_summary(frames.runs) == (
        "At the largest depth, with xavier_uniform init, adam has the highest final validation accuracy for 2 of 2 "
        "activations.")
    _, _, vanishing_md = vanishing            # gain 0 for xavier_uniform: both optimizers reach the same accuracy
    assert ("At the largest depth, with xavier_uniform init, the optimizers' final validation accuracies are within 0.01 "
            "of each other for all 2 activations.") in vanishing_md


def _trap_frames(frames_factory):
    """A synthetic sweep in which relu + uniform has a flat first-to-last gradient ratio while
    both signals vanish: weight gradients of 1e-21 in every layer, the error x6 smaller per layer
    toward the input, the activation variance x6 smaller per layer toward the output."""
    frames = frames_factory(gains={}, diverged=(), nan_run=None)
    stats = frames.layer_stats.copy()
    trap = stats["run_id"].str.startswith("relu-uniform-")
    depth = stats["run_id"].map(frames.runs.set_index("run_id")["depth"])
    grad = trap & stats["stat"].isin(["grad_norm", "bias_grad_norm"])
    stats.loc[grad, "value"] = 1e-21
    delta = trap & (stats["stat"] == "delta_ms")
    stats.loc[delta, "value"] = 0.09 * 6.0 ** -(depth[delta] + 1 - stats.loc[delta, "layer"])
    act = trap & (stats["stat"] == "act_var")
    stats.loc[act, "value"] = 0.1 * 6.0 ** -(stats.loc[act, "layer"] - 1.0)
    scalars = frames.scalars.copy()
    scalars.loc[(scalars["name"] == "loss/train") & (scalars["step"] == 0), "value"] = 2.3  # as a real probe
    runs = frames.runs.copy()
    # sgd at 0.5: the healthy runs' gradients (0.1) can then move the loss within the 100 steps
    runs.loc[runs["optimizer"] == "sgd", "lr"] = 0.5
    runs.loc[runs["run_id"].str.startswith("relu-uniform-"), "acc/val"] = 0.1
    return Frames(runs=runs, layer_stats=stats, histograms=frames.histograms, scalars=scalars,
                  experiment="synthetic", sweep="trap")


def test_the_trap_case_reads_as_vanishing(frames_factory):
    frames = _trap_frames(frames_factory)
    ratio = tables.grad_ratio(frames.layer_stats, frames.runs)
    trap_runs = frames.runs[frames.runs["run_id"].str.startswith("relu-uniform-")]["run_id"]
    assert np.allclose(ratio[trap_runs], 0.0)                      # the ratio is flat: 10^0
    markdown = quietly(report.build_markdown, frames)
    assert "| relu | uniform | 0.00 | vanishing | 0.10, stalled | 0.10, stalled |" in markdown
    # at depth 5 the error falls 6^4 > e^6 below the top hidden layer; at depth 2 only 6x: the
    # network's profiles are not vanishing there (its tiny gradients are the budget's question)
    assert "Inside the band but flagged by the diagnosis: relu + uniform at depth 5 (vanishing)." in markdown
    assert "the diagnosis flags 1 of them at initialization (relu + uniform)" in markdown
    assert "vanishing: relu + uniform (a pair counts as flagged" in markdown
    assert "| vanishing | 0 | 2 | 0 | 2 |" in markdown                # both deep trap runs stall


def test_with_seeds_numbers_carry_their_spread(frames_factory):
    frames = frames_factory(seeds=(0, 1, 2))
    markdown = quietly(report.build_markdown, frames)
    assert re.search(r"\[over 3 seeds: 10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹·]+ to 10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹·]+\]", markdown)
    assert "Lines are the median over 3 seeds, the shaded band their min–max." in markdown
    single = quietly(report.build_markdown, frames_factory())
    assert "over 3 seeds" not in single and "no seed band" in single


def test_a_failed_run_without_data_is_counted_apart(frames_factory):
    frames = frames_factory(activations=("relu", "sigmoid"), inits=("uniform", "he_uniform"), depths=(2, 5),
                            optimizers=("sgd",), diverged=(), nan_run=None, failed_run=("sigmoid", "he_uniform", 5, "sgd"))
    markdown = quietly(report.build_markdown, frames)
    assert ("- Trainability: 5 trained, 2 stalled, 0 diverged (outcome tag: 7 ok, 1 unknown); no verdict for 1 "
            "run(s): 1 FAILED.") in markdown
    assert "| sigmoid | he_uniform | n/a | n/a | n/a, n/a (1 FAILED) |" in markdown
    assert "| n/a | 0 | 0 | 0 | 1 | 1 |" in markdown and "| none | 5 | 1 | 0 | 0 | 6 |" in markdown


def run_main(arguments, capsys):
    """(exit status, stderr) of report.main, which must not print a traceback."""
    try:
        status = report.main(arguments)
    except SystemExit as exit:   # argparse's errors
        status = exit.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def test_an_unusable_store_is_one_line_and_exit_2(tmp_path, capsys):
    import socket
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database " * 400)
    status, err = run_main(["--tracking-uri", f"sqlite:///{corrupt}", "--no-log", "--out", str(tmp_path / "r")],
                           capsys)
    assert status == 2 and err == (f"analysis.report: tracking store sqlite:///{corrupt}: {corrupt} is not a usable "
                                   "sqlite database (file is not a database)\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, err = run_main(["--tracking-uri", f"http://127.0.0.1:{port}", "--no-log", "--out", str(tmp_path / "r")],
                           capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"analysis.report: tracking server http://127.0.0.1:{port} is unreachable (")
    assert not (tmp_path / "r").exists()


def test_an_output_directory_under_a_file_is_one_line_and_exit_2(mlflow_store, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "rep"
    status, err = run_main(["--experiment", mlflow_store["experiment"], "--tracking-uri", mlflow_store["uri"],
                            "--out", str(out), "--no-log"], capsys)
    assert status == 2
    assert err == f"analysis.report: {out}: Not a directory\n"


@pytest.mark.parametrize("jobs, message", [("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"),
                                           ("two", "must be an integer of at least 1, got 'two'")])
def test_jobs_below_one_is_refused(jobs, message, tmp_path, capsys):
    status, err = run_main(["--jobs", jobs, "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--out", str(tmp_path)],
                           capsys)
    assert status == 2 and err.splitlines()[-1] == f"python -m analysis.report: error: argument --jobs: {message}"


def test_runs_that_differ_only_in_lr_are_named_and_grouped_apart():
    from analysis import load
    from synthetic_runs import _config_params, concatenated, make_frames, with_lr
    grid = {"activations": ("relu", "tanh"), "inits": ("he_uniform",), "depths": (2,), "optimizers": ("sgd",),
            "nan_run": None}
    frames = concatenated(with_lr(make_frames(**grid, diverged=()), 0.05, "-a"),
                          with_lr(make_frames(**grid, diverged=(("relu", "he_uniform", 2, "sgd"),)), 50, "-b"))
    runs = frames.runs.copy()
    runs.loc[runs["run_id"] == "tanh-he_uniform-d2-sgd-s0-a", "acc/val"] = 0.9
    runs.loc[runs["run_id"] == "tanh-he_uniform-d2-sgd-s0-b", "acc/val"] = 0.2
    runs.loc[runs["run_id"] == "relu-he_uniform-d2-sgd-s0-a", "acc/val"] = 0.5
    runs, varying = load.with_variants(runs, {row["run_id"]: {k: str(v) for k, v in _config_params(row).items()}
                                              for _, row in runs.iterrows()})
    markdown = quietly(report.build_markdown, replace(frames, runs=runs, varying=varying))
    assert ("; dataset moons; also varying: optimizer.lr 0.05, 50.0 (the sentences and tables name and group runs by "
            "these values too; the figures pool them).") in markdown
    assert "1 of 4 runs diverged: relu + he_uniform, depth 2, sgd (optimizer.lr=50.0)." in markdown
    assert ("Best final validation accuracy: 0.900 (tanh + he_uniform, depth 2, sgd (optimizer.lr=0.05)); worst among "
            "runs that did not diverge: 0.200 (tanh + he_uniform, depth 2, sgd (optimizer.lr=50.0)).") in markdown
    # one row per setting: the cells no longer average lr 0.05 with lr 50
    assert "| relu | he_uniform (optimizer.lr=0.05) | 0.00 | none | 0.50, trained |" in markdown
    assert "| relu | he_uniform (optimizer.lr=50.0) | 0.00 | none | div, diverged |" in markdown
    assert "| tanh | he_uniform (optimizer.lr=0.05) | 0.14 | none | 0.90, trained |" in markdown
    # the network at init does not depend on the learning rate: lr 50 is not "exploding" at step 0
    assert "| tanh | he_uniform (optimizer.lr=50.0) | 0.14 | none | 0.20, trained |" in markdown
    assert ("no pathology at initialization for 4 of 4 activation × init settings (relu + he_uniform "
            "(optimizer.lr=0.05), relu + he_uniform (optimizer.lr=50.0), tanh + he_uniform (optimizer.lr=0.05) and "
            "tanh + he_uniform (optimizer.lr=50.0)) (a setting counts") in markdown


def test_a_report_of_mlp_and_recurrent_runs_has_both_sections(frames, tmp_path):
    """Recurrent runs (layer = k * 100000 + t) stay out of the MLP sections and get their own."""
    from synthetic_runs import recurrent_only
    rec = recurrent_only(frames, clip_norm=1.0)
    both = replace(frames, runs=pd.concat([frames.runs.assign(cell="none"), rec.runs], ignore_index=True),
                   layer_stats=pd.concat([frames.layer_stats.astype({"run_id": str, "stat": str}), rec.layer_stats],
                                         ignore_index=True), flags=None)
    markdown = to_markdown(report.build_report(both, tmp_path, jobs=1))
    assert "## Gradients at initialization" in markdown and "## Recurrent networks: gradients through time" in markdown
    assert "- Recurrent runs: 1 (cells rnn; T 12; datasets adding): 1 stalled." in markdown
    # the per-step ratio of the error's RMS: 0.25 in mean square per step is 0.5 in RMS
    assert "per-step ratio at init 0.500" in markdown
    assert "(T = 12, adam, clip_norm 1, seed 0)" in markdown  # runs that differ in clipping are told apart
    assert (tmp_path / "figures" / "recurrent_delta_ms.png").exists()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == len(frames.runs) + 1 and "rec" in set(summary["run_id"])
    # the MLP figures and tables saw the MLP runs only
    assert f"{len(frames.runs) + 1} runs." in markdown
    assert "rnn-tanh-pytorch" not in markdown.split("## Recurrent networks")[0].split("## At a glance")[1]


# fork, how `make report` draws: every figure; spawn, the fallback: three of them (its start-up is the point)
@pytest.mark.parametrize("start, sections", [("fork", SECTIONS), ("spawn", SECTIONS[:3])])
def test_figures_drawn_by_two_workers_are_the_files_drawn_in_process(frames, tmp_path, monkeypatch, start, sections):
    import multiprocessing
    monkeypatch.setattr(report, "worker_context", lambda: multiprocessing.get_context(start))
    with report.FigureDrawer(frames, tmp_path / "alone", jobs=1, sections=sections) as drawer:
        assert drawer.pool is None
    alone = drawer.paths
    with report.FigureDrawer(frames, tmp_path / "pooled", jobs=2, sections=sections) as drawer:
        assert drawer.pool is not None and len(drawer.pending) == len(sections)
    pooled = drawer.paths
    assert [path.name for path in pooled] == [path.name for path in alone]
    assert len(alone) == 2 * len(sections)
    for one, other in zip(alone, pooled):
        assert one.read_bytes() == other.read_bytes(), one.name


def test_a_figure_failing_in_a_worker_fails_the_report(frames, tmp_path, monkeypatch):
    import multiprocessing

    def broken(frames, theory):
        raise ValueError("cannot draw this")
    name = SECTIONS[-1].name
    monkeypatch.setattr(report, "worker_context", lambda: multiprocessing.get_context("fork"))  # inherits the patch
    monkeypatch.setitem(report.SECTIONS_BY_NAME, name, replace(SECTIONS_BY_NAME[name], draw=broken))
    with pytest.raises(ValueError, match="cannot draw this"):
        report.write_figures(frames, tmp_path, jobs=2)


def test_workers_fork_only_from_a_single_threaded_linux_process(monkeypatch):
    monkeypatch.setattr(report.sys, "platform", "linux")
    monkeypatch.setattr(report.threading, "active_count", lambda: 1)
    assert report.worker_context().get_start_method() == "fork"
    monkeypatch.setattr(report.threading, "active_count", lambda: 2)   # e.g. a notebook's kernel threads
    assert report.worker_context().get_start_method() == "spawn"
    monkeypatch.setattr(report.threading, "active_count", lambda: 1)
    monkeypatch.setattr(report.sys, "platform", "darwin")
    assert report.worker_context().get_start_method() == "spawn"
