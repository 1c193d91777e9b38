"""Figures 3 and 7: the variance of each layer's activations, at initialization (with the mean-field
prediction and its finite-width interval) and at each run's last logged step.
"""
from ..figures import WHEN_LABELS, layer_grid, styled
from ..observations import profile_extremes
from ..tables import FINAL, INIT
from .section import FigureSection, seed_caption


@styled
def fig_act_var(layer_stats, runs, when=INIT, theory=None):
    """Activation variance per layer at initialization or at the last logged step."""
    return layer_grid(layer_stats, runs, "act_var", when,
                       f"Activation variance per layer {WHEN_LABELS[when]}", theory)


def act_var_observations(layer_stats, runs, when=INIT):
    return profile_extremes(layer_stats, runs, "act_var", when, "last_hidden", "first",
                             "the activation variance of the last hidden layer relative to layer 1")


INIT_SECTION = FigureSection(
    "act_var_init", "Forward and backward signals at initialization", "Activation variance per layer at initialization",
    lambda f, theory: fig_act_var(f.layer_stats, f.runs, INIT, theory),
    lambda f: ("Variance of each layer's activations at step 0 (log scale; the last layer is the logits). "
               "Dashed: mean field; hatched (ReLU and leaky ReLU): the finite-width 90% interval "
               "(log-normal, Hanin & Rolnick 2018) at the run's widths." + seed_caption(f)),
    lambda f: act_var_observations(f.layer_stats, f.runs, INIT))

FINAL_SECTION = FigureSection(
    "act_var_final", "During and after training", "Activation variance per layer at the end of training",
    lambda f, theory: fig_act_var(f.layer_stats, f.runs, FINAL),
    lambda f: ("Variance of each layer's activations at each run's last logged step; line style = "
               "optimizer." + seed_caption(f)),
    lambda f: act_var_observations(f.layer_stats, f.runs, FINAL))
