"""Figure 5: histograms of the activations and back-propagated errors of every hidden layer at
initialization, for two inits of one activation and depth (as Glorot & Bengio 2010, Figs. 6-7).
"""
import numpy as np

from .. import tables
from ..figures import layer_colorbar, mark_empty, new_figure, no_data_figure, styled, suptitle
from ..observations import listing, pow10
from ..selection import PREFERRED_OPTIMIZER, first_run, prefer
from .section import FigureSection

# Glorot & Bengio (2010) Figs. 6-7: tanh, standard vs normalized initialization,
# five hidden layers.
PREFERRED_HISTOGRAM_ACTIVATION = "tanh"
PREFERRED_HISTOGRAM_INITS = ("uniform", "xavier_uniform")
PREFERRED_HISTOGRAM_DEPTH = 5


def histogram_setup(runs, histograms, activation=None, depth=None, inits=None):
    """(activation, depth, {init: run_id}) for the histogram figure: runs that have
    histograms at step 0, the preferred activation and pair of inits, and the
    depth closest to the preferred one that all the chosen inits share."""
    at_init = histograms.loc[histograms["step"] == 0, "run_id"].unique()  # not set(): iterating millions of rows
    candidates = runs[runs["run_id"].isin(at_init)]
    activation = activation or prefer(candidates["activation"], PREFERRED_HISTOGRAM_ACTIVATION)
    candidates = candidates[candidates["activation"] == activation]
    available = sorted(set(candidates["init"]))
    if inits is None:
        inits = [init for init in PREFERRED_HISTOGRAM_INITS if init in available]
        inits = inits if len(inits) == 2 else available[:2]
    candidates = candidates[candidates["init"].isin(inits)]
    shared = None
    for init in inits:
        depths = set(candidates.loc[candidates["init"] == init, "depth"])
        shared = depths if shared is None else shared & depths
    if not shared:
        return activation, None, {}
    depth = depth if depth in shared else min(shared, key=lambda d: (abs(d - PREFERRED_HISTOGRAM_DEPTH), d))
    chosen = {}
    for init in inits:
        group = candidates[(candidates["init"] == init) & (candidates["depth"] == depth)]
        optimizer = prefer(group["optimizer"], PREFERRED_OPTIMIZER)
        chosen[init] = first_run(group[group["optimizer"] == optimizer])["run_id"]
    return activation, int(depth), chosen


HISTOGRAM_ROWS = (("act", "activations", "activation value $a_l$", False),
                  ("delta", "back-propagated errors", r"per-example error $\partial \ell_n/\partial z_l$", True))


def _densities(hist):
    """(bin centres, normalized density) of one histogram; empty for zero counts."""
    hist = hist.sort_values("bin")
    width = (hist["right"] - hist["left"]).to_numpy(np.float64)
    counts = hist["count"].to_numpy(np.float64)
    total = counts.sum()
    centres = ((hist["left"] + hist["right"]) / 2).to_numpy(np.float64)
    if total <= 0:
        return centres[:0], counts[:0]
    with np.errstate(divide="ignore", invalid="ignore"):
        density = counts / (total * width)
    return centres, density


@styled
def fig_histograms(histograms, runs, activation=None, depth=None, inits=None):
    """Glorot & Bengio (2010) Figs. 6-7 style: normalized histograms of the
    activations and of the back-propagated errors of every hidden layer at
    initialization, one line per layer, for two inits (default uniform vs
    xavier_uniform) at one depth (default the one closest to 5) and activation
    (default tanh). The error densities span decades, so that row is log y."""
    base_title = "Histograms at initialization"
    activation, depth, chosen = histogram_setup(runs, histograms, activation, depth, inits)
    if not chosen:
        return no_data_figure(base_title, "no run with histograms at step 0")
    title = f"{base_title}: {activation}, depth {depth}, hidden layers 1-{depth}"
    at_init = histograms[(histograms["step"] == 0) & (histograms["layer"] <= depth)
                         & histograms["run_id"].isin(chosen.values())]
    if not (at_init["count"] > 0).any():
        return no_data_figure(title, "every histogram at step 0 is empty")
    fig, axes = new_figure(len(HISTOGRAM_ROWS), len(chosen), sharex="row", sharey="row", extra_width=1.0)
    color_of = layer_colorbar(fig, axes, depth, label="hidden layer $l$")
    for col, (init, run_id) in enumerate(chosen.items()):
        run_hists = at_init[at_init["run_id"] == run_id]
        for row, (kind, name, xlabel, log_scale) in enumerate(HISTOGRAM_ROWS):
            ax = axes[row, col]
            drawn = 0
            for layer, hist in run_hists[run_hists["kind"] == kind].groupby("layer"):
                centres, density = _densities(hist)
                keep = np.isfinite(density) & (density > 0 if log_scale else np.isfinite(density))
                if keep.any():
                    ax.plot(centres[keep], density[keep], color=color_of(layer), linewidth=1.0)
                    drawn += 1
            if drawn == 0:
                mark_empty(ax)
            if log_scale:
                ax.set_yscale("log")
            ax.set_title(f"{init}: {name}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("density")
    suptitle(fig, title)
    return fig


def histogram_observations(histograms, runs, activation=None, depth=None, inits=None):
    """For each init of the histogram figure: how the spread of the errors and of the
    activations changes from the last hidden layer down to layer 1."""
    activation, depth, chosen = histogram_setup(runs, histograms, activation, depth, inits)
    if not chosen:
        return ["No run has histograms at step 0."]
    spreads = tables.histogram_std(histograms[(histograms["step"] == 0)
                                              & histograms["run_id"].isin(chosen.values())])
    sentences = []
    for init, run_id in chosen.items():
        spread = spreads[spreads["run_id"] == run_id].set_index(["kind", "layer"])["std"]
        parts = []
        for kind, label in (("delta", "back-propagated errors"), ("act", "activations")):
            if (kind, 1) in spread.index and (kind, depth) in spread.index:
                ratio = tables.safe_log10(spread[(kind, 1)]) - tables.safe_log10(spread[(kind, depth)])
                if np.isfinite(ratio):
                    parts.append(f"{pow10(ratio)} for the {label}")
        if parts:
            sentences.append(f"{activation} + {init}, depth {depth}: relative to layer {depth}, the std at layer 1 "
                             f"is {listing(parts)}.")
        else:
            sentences.append(f"{activation} + {init}, depth {depth}: no usable histograms at layers 1 and {depth}.")
    return sentences


def histogram_caption(frames):
    activation, depth, chosen = histogram_setup(frames.runs, frames.histograms)
    if not chosen:
        return "Histograms of activations and back-propagated errors at initialization (none logged)."
    return (f"Normalized histograms at initialization of the activations (top) and of the per-example "
            f"back-propagated errors (bottom, log density) of every hidden layer, {activation} at depth {depth}, "
            f"{' vs '.join(chosen)} (as Glorot & Bengio 2010, Figs. 6-7).")


SECTION = FigureSection(
    "histograms", "Forward and backward signals at initialization",
    "Distributions of activations and errors at initialization",
    lambda f, theory: fig_histograms(f.histograms, f.runs),
    histogram_caption,
    lambda f: histogram_observations(f.histograms, f.runs))
