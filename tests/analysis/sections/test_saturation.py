"""analysis.sections.saturation: one run's activations and saturation during training."""
from analysis.sections.saturation import fig_saturation
from figure_checks import colorbars, main_axes
from synthetic_runs import quietly


def test_saturation_shows_one_run_in_three_panels(frames):
    fig = quietly(fig_saturation, frames.layer_stats, frames.runs)
    axes = main_axes(fig)
    assert len(axes) == 3 and len(colorbars(fig)) == 1
    assert "sigmoid + uniform, depth 2" in fig.get_suptitle()  # preferred setting, lower middle depth
    assert all(ax.get_title() and ax.get_xlabel() == "training step" and ax.get_ylabel() for ax in axes)
    assert len(axes[1].get_lines()) == 2                      # one line per hidden layer
    assert axes[0].collections                                # the std bands
