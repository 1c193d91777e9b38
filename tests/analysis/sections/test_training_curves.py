"""analysis.sections.training_curves: training curves at the largest depth and the optimizers' comparison there."""
import numpy as np

from analysis.sections.training_curves import curves_observations, fig_training_curves
from figure_checks import main_axes
from synthetic_runs import quietly


def test_training_curves_log_loss_and_linear_accuracy(frames):
    fig = quietly(fig_training_curves, frames.scalars, frames.runs)
    axes = np.array(main_axes(fig)).reshape(2, 2)
    assert "xavier_uniform" in fig.get_suptitle()
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["log", "linear"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["training loss", "validation accuracy"]
    assert all(ax.get_xlabel() == "training step" for ax in axes[1])
    assert len(axes[0, 0].get_lines()) == 2                   # one line per optimizer


def test_training_curves_mark_a_diverged_run(frames):
    fig = quietly(fig_training_curves, frames.scalars, frames.runs, init="uniform")
    markers = [line for ax in main_axes(fig) for line in ax.get_lines() if line.get_marker() == "X"]
    assert markers                                            # sigmoid + uniform + sgd diverged


def test_optimizer_comparison_uses_the_largest_depth(frames):
    sentences = curves_observations(frames.runs)
    uniform = curves_observations(frames.runs, init="uniform")
    deepest = frames.runs[(frames.runs["depth"] == 5) & (frames.runs["init"] == "xavier_uniform")]
    for activation in ("relu", "sigmoid"):
        accuracy = deepest.set_index(["activation", "optimizer"])["acc/val"]
        expected = f"adam {accuracy[(activation, 'adam')]:.2f} and sgd {accuracy[(activation, 'sgd')]:.2f}"
        assert any(sentence.startswith(f"{activation} at depth 5") and expected in sentence for sentence in sentences)
    assert any("sgd diverged" in sentence for sentence in uniform)
