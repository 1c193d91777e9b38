"""analysis.sections.grad_norm: the weight-gradient norm per layer at initialization and at the end."""
import numpy as np

from analysis.sections.grad_norm import fig_grad_norm_final, fig_grad_norm_init
from figure_checks import all_text, main_axes
from synthetic_runs import quietly


def test_final_grid_distinguishes_optimizers_by_line_style(frames):
    fig = quietly(fig_grad_norm_final, frames.layer_stats, frames.runs)
    panel = main_axes(fig)[0]
    assert {line.get_linestyle() for line in panel.get_lines()} == {"-", ":"}
    assert "adam" in all_text(fig) and "sgd" in all_text(fig)


def test_init_grid_values_are_the_step_0_medians(frames):
    fig = quietly(fig_grad_norm_init, frames.layer_stats, frames.runs)
    sigmoid_uniform = main_axes(fig)[3]                       # row uniform, column sigmoid
    assert sigmoid_uniform.get_title() == "sigmoid · uniform"
    deepest = max(sigmoid_uniform.get_lines(), key=lambda line: len(line.get_xdata()))
    # synthetic gain -0.35 per layer: layer 1 of depth 5 is 10^(-0.35*5) below layer 6
    np.testing.assert_allclose(np.log10(deepest.get_ydata()[0] / deepest.get_ydata()[-1]), -1.75)
