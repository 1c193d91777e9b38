"""analysis.sections.heatmaps: the gradient norm over layers and training."""
from analysis.sections.heatmaps import fig_grad_heatmaps
from figure_checks import all_text, check_grid, colorbars
from synthetic_runs import quietly


def test_heatmaps_show_the_deepest_run_per_panel_with_a_shared_colorbar(frames):
    fig = quietly(fig_grad_heatmaps, frames.layer_stats, frames.runs)
    axes = check_grid(fig, 3, 2, "training step", "layer $l$", log_y=False)
    assert len(colorbars(fig)) == 1 and "log_{10}" in colorbars(fig)[0].get_ylabel()
    assert "sgd" in fig.get_suptitle()
    assert all("(depth 5)" in ax.get_title() for ax in axes.flat)
    assert "diverged at step" in all_text(fig)


def test_heatmaps_use_the_requested_optimizer(frames):
    fig = quietly(fig_grad_heatmaps, frames.layer_stats, frames.runs, optimizer="adam")
    assert "adam" in fig.get_suptitle()
