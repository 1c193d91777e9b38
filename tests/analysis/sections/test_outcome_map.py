"""analysis.sections.outcome_map: the final validation accuracy over the grid."""
from analysis.sections.outcome_map import fig_outcome_map
from figure_checks import check_grid, colorbars
from synthetic_runs import quietly


def test_outcome_map_hatches_diverged_cells(frames):
    fig = quietly(fig_outcome_map, frames.runs)
    axes = check_grid(fig, 2, 2, "depth", "init", log_y=False)
    assert [ax.get_title() for ax in axes[:, 1]] == ["sigmoid · adam", "sigmoid · sgd"]
    hatched = [patch for ax in axes.flat for patch in ax.patches if patch.get_hatch()]
    assert len(hatched) == 1
    assert "div" in " ".join(text.get_text() for text in axes[1, 1].texts)
    assert len(colorbars(fig)) == 1
