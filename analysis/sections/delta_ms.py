"""Figure 4: the mean square of the per-example back-propagated error at each layer at initialization.
"""
from ..figures import WHEN_LABELS, layer_grid, styled
from ..observations import profile_extremes
from ..tables import INIT
from .section import FigureSection, seed_caption


@styled
def fig_delta_ms(layer_stats, runs, when=INIT, theory=None):
    """Mean square back-propagated (per-example) error per layer."""
    return layer_grid(layer_stats, runs, "delta_ms", when,
                       f"Back-propagated error per layer {WHEN_LABELS[when]}", theory)


def delta_ms_observations(layer_stats, runs, when=INIT):
    return profile_extremes(layer_stats, runs, "delta_ms", when, "first", "output",
                             "the mean square back-propagated error at layer 1 relative to the output layer")


SECTION = FigureSection(
    "delta_ms_init", "Forward and backward signals at initialization", "Back-propagated error per layer at initialization",
    lambda f, theory: fig_delta_ms(f.layer_stats, f.runs, INIT, theory),
    lambda f: ("Mean square of the per-example back-propagated error ∂ℓ/∂z at each layer at step 0 "
               "(log scale); it does not depend on the batch size." + seed_caption(f)),
    lambda f: delta_ms_observations(f.layer_stats, f.runs, INIT))
