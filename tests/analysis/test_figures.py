"""analysis.figures: the per-layer grid the gradient, variance and error figures share (panels,
theory lines, seed bands, empty panels), saving, the seaborn style, and title placement."""
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import figures
from analysis.sections.act_var import fig_act_var
from analysis.sections.delta_ms import fig_delta_ms
from analysis.sections.grad_norm import fig_grad_norm_final, fig_grad_norm_init
from analysis.sections.ratio_vs_depth import fig_ratio_vs_depth
from analysis.sections.training_curves import fig_training_curves
from figure_checks import all_text, check_grid, main_axes
from synthetic_runs import quietly


# (figure function, table it reads): the per-layer grids share one layout
LAYER_GRIDS = [
    (fig_grad_norm_init, {}, figures.STAT_LABELS["grad_norm"]),
    (fig_grad_norm_final, {}, figures.STAT_LABELS["grad_norm"]),
    (fig_act_var, {"when": "init"}, figures.STAT_LABELS["act_var"]),
    (fig_act_var, {"when": "final"}, figures.STAT_LABELS["act_var"]),
    (fig_delta_ms, {}, figures.STAT_LABELS["delta_ms"]),
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


def theory_frame(runs):
    rows = [{"activation": a, "init": i, "depth": d, "layer": layer, "stat": stat, "value": 0.05}
            for (a, i, d) in runs[["activation", "init", "depth"]].drop_duplicates().itertuples(index=False)
            for layer in range(1, d + 2) for stat in ("grad_norm", "act_var", "delta_ms")]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("function", [fig_grad_norm_init, fig_act_var, fig_delta_ms])
def test_theory_is_drawn_dashed_only_when_given(frames, function):
    without = quietly(function, frames.layer_stats, frames.runs)
    with_theory = quietly(function, frames.layer_stats, frames.runs, theory=theory_frame(frames.runs))
    dashed = lambda fig: [line for ax in main_axes(fig) for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert dashed(without) == []
    assert len(dashed(with_theory)) == 6 * 2                  # 6 panels x 2 depths
    assert "theory" in all_text(with_theory) and "theory" not in all_text(without)


def test_a_panel_without_data_says_so(frames):
    runs = frames.runs
    only_relu_stats = frames.layer_stats[frames.layer_stats["run_id"].isin(runs.loc[runs["activation"] == "relu", "run_id"])]
    fig = quietly(fig_grad_norm_init, only_relu_stats, runs)
    sigmoid_panels = [ax for ax in main_axes(fig) if ax.get_title().startswith("sigmoid")]
    assert all(any(text.get_text() == "no data" for text in ax.texts) for ax in sigmoid_panels)


def test_save_figure_writes_png_and_svg(frames, tmp_path):
    fig = quietly(fig_ratio_vs_depth, frames.layer_stats, frames.runs)
    paths = quietly(figures.save_figure, fig, tmp_path, "ratio")
    assert [path.name for path in paths] == ["ratio.png", "ratio.svg"]
    assert all(path.stat().st_size > 1000 for path in paths)


def test_per_layer_figures_draw_the_median_and_a_seed_band(frames_factory):
    from matplotlib.collections import PolyCollection
    one = frames_factory()
    three = frames_factory(seeds=(0, 1, 2))
    bands = lambda fig: [c for ax in main_axes(fig) for c in ax.collections if isinstance(c, PolyCollection)]
    for function in (fig_grad_norm_init, fig_delta_ms):
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
    for draw in (lambda: fig_grad_norm_init(frames.layer_stats, frames.runs),
                 lambda: fig_training_curves(frames.scalars, frames.runs)):
        fig = quietly(draw)
        quietly(figures.save_figure, fig, tmp_path, "titles")
        renderer = FigureCanvasAgg(fig).get_renderer()
        for ax in main_axes(fig):
            title = ax.title.get_window_extent(renderer)
            assert title.y0 >= ax.get_window_extent(renderer).y1
            labels = [*ax.xaxis.get_ticklabels(), *ax.yaxis.get_ticklabels(), ax.yaxis.offsetText]
            assert not any(title.overlaps(label.get_window_extent(renderer)) for label in labels
                           if label.get_visible() and label.get_text())
