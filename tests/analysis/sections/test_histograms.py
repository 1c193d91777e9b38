"""analysis.sections.histograms: distributions of activations and errors at initialization."""
import numpy as np

from analysis.sections.histograms import fig_histograms
from figure_checks import main_axes
from synthetic_runs import quietly


def test_histograms_compare_two_inits_with_log_error_densities(frames):
    fig = quietly(fig_histograms, frames.histograms, frames.runs)
    axes = np.array(main_axes(fig)).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["uniform: activations", "xavier_uniform: activations"]
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["linear", "log"]
    assert all(ax.get_ylabel() == "density" and ax.get_xlabel() for ax in axes.flat)
    assert "depth 5" in fig.get_suptitle()                    # closest to the preferred depth 5
    for line in axes[0, 0].get_lines():                        # normalized densities
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_allclose(np.sum(y) * (x[1] - x[0]), 1.0, rtol=1e-3)
