"""Every figure: the right grid, titles, labels and scales, no warnings, and a
readable figure (never a traceback) for degenerate data."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import figures
from analysis.load import Frames
from synthetic_runs import quietly


def main_axes(fig):
    """The axes of the figure, colorbars excluded."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def all_text(fig):
    texts = [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [text.get_text() for text in ax.texts]
    for legend in fig.legends:
        texts += [text.get_text() for text in legend.get_texts()]
    return " ".join(texts)


def is_no_data(fig):
    return len(fig.axes) == 1 and any(text.get_text().startswith("no data:") for text in fig.axes[0].texts)


def check_grid(fig, n_rows, n_cols, xlabel, ylabel, log_y):
    """n_rows x n_cols titled panels; outer axes labelled; every panel log-y or not."""
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    axes = np.array(main_axes(fig)).reshape(n_rows, n_cols)
    assert all(ax.get_title() for ax in axes.flat)
    assert all(ax.get_xlabel() == xlabel for ax in axes[-1, :])
    assert all(ax.get_ylabel() == ylabel for ax in axes[:, 0])
    assert all((ax.get_yscale() == "log") == log_y for ax in axes.flat)
    return axes


# (figure function, table it reads): the per-layer grids share one layout
LAYER_GRIDS = [
    (figures.fig_grad_norm_init, {}, figures.STAT_LABELS["grad_norm"]),
    (figures.fig_grad_norm_final, {}, figures.STAT_LABELS["grad_norm"]),
    (figures.fig_act_var, {"when": "init"}, figures.STAT_LABELS["act_var"]),
    (figures.fig_act_var, {"when": "final"}, figures.STAT_LABELS["act_var"]),
    (figures.fig_delta_ms, {}, figures.STAT_LABELS["delta_ms"]),
]


@pytest.mark.parametrize("function, kwargs, ylabel", LAYER_GRIDS)
def test_layer_grids_have_one_log_panel_per_init_and_activation(frames, function, kwargs, ylabel):
    fig = quietly(function, frames.layer_stats, frames.runs, **kwargs)
    axes = check_grid(fig, 3, 2, "layer $l$ (1 = input side)", ylabel, log_y=True)
    assert axes[0, 0].get_title() == "relu · he_uniform"
    assert axes[2, 1].get_title() == "sigmoid · xavier_uniform"
    legend = " ".join(text.get_text() for text in fig.legends[0].get_texts())
    assert "depth 2" in legend and "depth 5" in legend
    assert len(axes[0, 0].get_lines()) >= 2


def test_final_grid_distinguishes_optimizers_by_line_style(frames):
    fig = quietly(figures.fig_grad_norm_final, frames.layer_stats, frames.runs)
    panel = main_axes(fig)[0]
    assert {line.get_linestyle() for line in panel.get_lines()} == {"-", ":"}
    assert "adam" in all_text(fig) and "sgd" in all_text(fig)


def test_init_grid_values_are_the_step_0_medians(frames):
    fig = quietly(figures.fig_grad_norm_init, frames.layer_stats, frames.runs)
    sigmoid_uniform = main_axes(fig)[3]                       # row uniform, column sigmoid
    assert sigmoid_uniform.get_title() == "sigmoid · uniform"
    deepest = max(sigmoid_uniform.get_lines(), key=lambda line: len(line.get_xdata()))
    # synthetic gain -0.35 per layer: layer 1 of depth 5 is 10^(-0.35*5) below layer 6
    np.testing.assert_allclose(np.log10(deepest.get_ydata()[0] / deepest.get_ydata()[-1]), -1.75)


def theory_frame(runs):
    rows = [{"activation": a, "init": i, "depth": d, "layer": layer, "stat": stat, "value": 0.05}
            for (a, i, d) in runs[["activation", "init", "depth"]].drop_duplicates().itertuples(index=False)
            for layer in range(1, d + 2) for stat in ("grad_norm", "act_var", "delta_ms")]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("function", [figures.fig_grad_norm_init, figures.fig_act_var, figures.fig_delta_ms])
def test_theory_is_drawn_dashed_only_when_given(frames, function):
    without = quietly(function, frames.layer_stats, frames.runs)
    with_theory = quietly(function, frames.layer_stats, frames.runs, theory=theory_frame(frames.runs))
    dashed = lambda fig: [line for ax in main_axes(fig) for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert dashed(without) == []
    assert len(dashed(with_theory)) == 6 * 2                  # 6 panels x 2 depths
    assert "theory" in all_text(with_theory) and "theory" not in all_text(without)


def test_ratio_vs_depth_has_a_panel_per_activation_and_a_factor_10_band(frames):
    fig = quietly(figures.fig_ratio_vs_depth, frames.layer_stats, frames.runs)
    axes = check_grid(fig, 1, 2, "depth (hidden layers)", r"$\log_{10}(\|g_1\| / \|g_L\|)$ at init", log_y=False)
    assert [ax.get_title() for ax in axes[0]] == ["relu", "sigmoid"]
    assert "|log10 ratio| < 1" in all_text(fig) and "not a health test" in all_text(fig)
    assert all(ax.patches for ax in axes.flat)                # the shaded band
    lines = {tuple(line.get_xdata()): line for line in axes[0, 1].get_lines() if len(line.get_xdata()) == 2}
    assert lines                                              # one line per init over depths 2 and 5


def test_heatmaps_show_the_deepest_run_per_panel_with_a_shared_colorbar(frames):
    fig = quietly(figures.fig_grad_heatmaps, frames.layer_stats, frames.runs)
    axes = check_grid(fig, 3, 2, "training step", "layer $l$", log_y=False)
    assert len(colorbars(fig)) == 1 and "log_{10}" in colorbars(fig)[0].get_ylabel()
    assert "sgd" in fig.get_suptitle()
    assert all("(depth 5)" in ax.get_title() for ax in axes.flat)
    assert "diverged at step" in all_text(fig)


def test_heatmaps_use_the_requested_optimizer(frames):
    fig = quietly(figures.fig_grad_heatmaps, frames.layer_stats, frames.runs, optimizer="adam")
    assert "adam" in fig.get_suptitle()


def test_training_curves_log_loss_and_linear_accuracy(frames):
    fig = quietly(figures.fig_training_curves, frames.scalars, frames.runs)
    axes = np.array(main_axes(fig)).reshape(2, 2)
    assert "xavier_uniform" in fig.get_suptitle()
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["log", "linear"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["training loss", "validation accuracy"]
    assert all(ax.get_xlabel() == "training step" for ax in axes[1])
    assert len(axes[0, 0].get_lines()) == 2                   # one line per optimizer


def test_training_curves_mark_a_diverged_run(frames):
    fig = quietly(figures.fig_training_curves, frames.scalars, frames.runs, init="uniform")
    markers = [line for ax in main_axes(fig) for line in ax.get_lines() if line.get_marker() == "X"]
    assert markers                                            # sigmoid + uniform + sgd diverged


def test_saturation_shows_one_run_in_three_panels(frames):
    fig = quietly(figures.fig_saturation, frames.layer_stats, frames.runs)
    axes = main_axes(fig)
    assert len(axes) == 3 and len(colorbars(fig)) == 1
    assert "sigmoid + uniform, depth 2" in fig.get_suptitle()  # preferred setting, lower middle depth
    assert all(ax.get_title() and ax.get_xlabel() == "training step" and ax.get_ylabel() for ax in axes)
    assert len(axes[1].get_lines()) == 2                      # one line per hidden layer
    assert axes[0].collections                                # the std bands


def test_histograms_compare_two_inits_with_log_error_densities(frames):
    fig = quietly(figures.fig_histograms, frames.histograms, frames.runs)
    axes = np.array(main_axes(fig)).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["uniform: activations", "xavier_uniform: activations"]
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["linear", "log"]
    assert all(ax.get_ylabel() == "density" and ax.get_xlabel() for ax in axes.flat)
    assert "depth 5" in fig.get_suptitle()                    # closest to the preferred depth 5
    for line in axes[0, 0].get_lines():                        # normalized densities
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_allclose(np.sum(y) * (x[1] - x[0]), 1.0, rtol=1e-3)


def test_outcome_map_hatches_diverged_cells(frames):
    fig = quietly(figures.fig_outcome_map, frames.runs)
    axes = check_grid(fig, 2, 2, "depth", "init", log_y=False)
    assert [ax.get_title() for ax in axes[:, 1]] == ["sigmoid · adam", "sigmoid · sgd"]
    hatched = [patch for ax in axes.flat for patch in ax.patches if patch.get_hatch()]
    assert len(hatched) == 1
    assert "div" in " ".join(text.get_text() for text in axes[1, 1].texts)
    assert len(colorbars(fig)) == 1


# --- robustness ----------------------------------------------------------------

ALL_FIGURES = [
    ("grad_norm_init", lambda f: figures.fig_grad_norm_init(f.layer_stats, f.runs)),
    ("grad_norm_final", lambda f: figures.fig_grad_norm_final(f.layer_stats, f.runs)),
    ("act_var", lambda f: figures.fig_act_var(f.layer_stats, f.runs)),
    ("delta_ms", lambda f: figures.fig_delta_ms(f.layer_stats, f.runs)),
    ("ratio_vs_depth", lambda f: figures.fig_ratio_vs_depth(f.layer_stats, f.runs)),
    ("grad_heatmaps", lambda f: figures.fig_grad_heatmaps(f.layer_stats, f.runs)),
    ("training_curves", lambda f: figures.fig_training_curves(f.scalars, f.runs)),
    ("saturation", lambda f: figures.fig_saturation(f.layer_stats, f.runs)),
    ("histograms", lambda f: figures.fig_histograms(f.histograms, f.runs)),
    ("outcome_map", lambda f: figures.fig_outcome_map(f.runs)),
]


def empty_like(frames):
    return Frames(runs=frames.runs.iloc[0:0], layer_stats=frames.layer_stats.iloc[0:0],
                  histograms=frames.histograms.iloc[0:0], scalars=frames.scalars.iloc[0:0])


@pytest.mark.parametrize("name, draw", ALL_FIGURES)
def test_no_runs_give_a_titled_no_data_figure(frames, name, draw):
    fig = quietly(draw, empty_like(frames))
    assert is_no_data(fig) and fig.get_suptitle()


@pytest.mark.parametrize("name, draw", ALL_FIGURES)
def test_runs_without_histories_give_a_sensible_figure(frames, name, draw):
    runs_only = Frames(runs=frames.runs, layer_stats=frames.layer_stats.iloc[0:0],
                       histograms=frames.histograms.iloc[0:0], scalars=frames.scalars.iloc[0:0])
    fig = quietly(draw, runs_only)
    assert fig.get_suptitle()
    assert is_no_data(fig) or name == "outcome_map"           # the outcome map only needs the runs


@pytest.mark.parametrize("name, draw", ALL_FIGURES)
def test_all_nan_values_give_a_no_data_figure_not_a_blank_one(frames, name, draw):
    nan_frames = Frames(runs=frames.runs, layer_stats=frames.layer_stats.assign(value=np.nan),
                        histograms=frames.histograms.assign(count=0), scalars=frames.scalars.assign(value=np.inf))
    fig = quietly(draw, nan_frames)
    assert fig.get_suptitle()
    assert is_no_data(fig) or name == "outcome_map"           # the outcome map only needs the runs


@pytest.mark.parametrize("name, draw", ALL_FIGURES)
def test_single_depth_missing_layer_and_infinite_values(frames_factory, name, draw):
    degenerate = frames_factory(depths=(5,), missing_layer_run=("sigmoid", "uniform", 5, "adam"))
    fig = quietly(draw, degenerate)
    assert fig.get_suptitle() and not is_no_data(fig)


def test_a_panel_without_data_says_so(frames):
    runs = frames.runs
    only_relu_stats = frames.layer_stats[frames.layer_stats["run_id"].isin(runs.loc[runs["activation"] == "relu", "run_id"])]
    fig = quietly(figures.fig_grad_norm_init, only_relu_stats, runs)
    sigmoid_panels = [ax for ax in main_axes(fig) if ax.get_title().startswith("sigmoid")]
    assert all(any(text.get_text() == "no data" for text in ax.texts) for ax in sigmoid_panels)


def test_save_figure_writes_png_and_svg(frames, tmp_path):
    fig = quietly(figures.fig_ratio_vs_depth, frames.layer_stats, frames.runs)
    paths = quietly(figures.save_figure, fig, tmp_path, "ratio")
    assert [path.name for path in paths] == ["ratio.png", "ratio.svg"]
    assert all(path.stat().st_size > 1000 for path in paths)


def test_per_layer_figures_draw_the_median_and_a_seed_band(frames_factory):
    from matplotlib.collections import PolyCollection
    one = frames_factory()
    three = frames_factory(seeds=(0, 1, 2))
    bands = lambda fig: [c for ax in main_axes(fig) for c in ax.collections if isinstance(c, PolyCollection)]
    for function in (figures.fig_grad_norm_init, figures.fig_delta_ms):
        assert bands(quietly(function, one.layer_stats, one.runs)) == []
        fig = quietly(function, three.layer_stats, three.runs)
        assert len(bands(fig)) == 6 * 2                     # 6 panels x 2 depths
        text = " ".join(all_text(fig).split())             # titles wrap
        assert "min–max over 3 seeds" in text and "median of 3 seeds" in text


def test_style_and_palettes_are_seaborns():
    """figures writes seaborn's whitegrid/paper style and palettes out (importing seaborn costs
    seconds); the copy must stay what seaborn gives."""
    import seaborn as sns
    assert figures.SEABORN_STYLE == {**sns.axes_style("whitegrid"), **sns.plotting_context("paper")}
    for n in (1, 4, 10):
        assert list(figures.ordered_colors(range(n)).values()) == list(sns.color_palette("colorblind", n))
    for n in (11, 30):
        expected = [tuple(float(c) for c in color) for color in sns.color_palette("viridis", n)]
        assert [tuple(float(c) for c in color) for color in figures.ordered_colors(range(n)).values()] == expected


def test_panel_titles_sit_above_their_axes_clear_of_tick_labels(frames, tmp_path):
    """Titles are placed at the top of their axes without matplotlib's automatic search
    (axes.titley): after saving, each title is above its panel and overlaps no tick label."""
    for draw in (lambda: figures.fig_grad_norm_init(frames.layer_stats, frames.runs),
                 lambda: figures.fig_training_curves(frames.scalars, frames.runs)):
        fig = quietly(draw)
        quietly(figures.save_figure, fig, tmp_path, "titles")
        renderer = FigureCanvasAgg(fig).get_renderer()
        for ax in main_axes(fig):
            title = ax.title.get_window_extent(renderer)
            assert title.y0 >= ax.get_window_extent(renderer).y1
            labels = [*ax.xaxis.get_ticklabels(), *ax.yaxis.get_ticklabels(), ax.yaxis.offsetText]
            assert not any(title.overlaps(label.get_window_extent(renderer)) for label in labels
                           if label.get_visible() and label.get_text())
