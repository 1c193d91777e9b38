"""Figure 2: the first-to-last layer gradient ratio at initialization against depth, with the
depth up to which each activation and init stays within a factor 10 (and unflagged by the diagnosis).
"""
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import tables
from ..figures import label_outer, mark_empty, new_figure, no_data_figure, ordered_colors, styled, suptitle
from ..observations import has_verdicts, listing, main_pathology, pow10, variant_text
from ..tables import HEALTHY_LOG10_RATIO, INIT
from .section import FigureSection


@styled
def fig_ratio_vs_depth(layer_stats, runs):
    """log10(grad_norm at layer 1 / at layer L) at init against depth: one panel per
    activation, one line per init, the band |log10 ratio| < 1 shaded, and a red cross on
    every configuration the diagnosis flags at init (runs column ``pathology_init``): the
    ratio alone is blind when the forward signal and the backward error vanish together.

    Depth stays on a linear axis: a per-layer gain makes the log ratio linear in depth."""
    title = "Gradient ratio between the first and the last layer at initialization"
    if runs.empty:
        return no_data_figure(title, "no runs")
    ratios = tables.config_ratio(tables.grad_ratio(layer_stats, runs, INIT), runs)
    ratios = ratios[np.isfinite(ratios["value"])]
    if ratios.empty:
        return no_data_figure(title, "no finite positive grad_norm at layers 1 and L at step 0")
    flagged = tables.flagged_configs(runs)
    activations = sorted(runs["activation"].unique())
    colors = ordered_colors(sorted(runs["init"].unique()))
    depths = sorted(int(depth) for depth in ratios["depth"].unique())
    fig, axes = new_figure(1, len(activations), sharex=True, sharey=True, extra_width=2.2)
    for col, activation in enumerate(activations):
        ax = axes[0, col]
        ax.axhspan(-HEALTHY_LOG10_RATIO, HEALTHY_LOG10_RATIO, color="0.85", alpha=0.6, linewidth=0)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        panel = ratios[ratios["activation"] == activation]
        for init, line in panel.groupby("init"):
            line = line.sort_values("depth")
            ax.plot(line["depth"], line["value"], color=colors[init], marker="o", markersize=3.5)
            sick = line[[(activation, init, depth) in flagged for depth in line["depth"]]]
            ax.plot(sick["depth"], sick["value"], linestyle="none", marker="x", markersize=7, color="#d62728")
        if panel.empty:
            mark_empty(ax)
        ax.set_xticks(depths)  # the tested depths, whole numbers even when there is one
        ax.set_title(activation)
    label_outer(axes, "depth (hidden layers)", r"$\log_{10}(\|g_1\| / \|g_L\|)$ at init")
    handles = [Line2D([], [], color=color, marker="o", markersize=3.5, label=init)
               for init, color in colors.items()]
    handles.append(Patch(color="0.85", label=f"|log10 ratio| < {HEALTHY_LOG10_RATIO:g}\n(not a health test alone)"))
    if flagged:
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7, color="#d62728",
                              label="flagged by the diagnosis\nat init (≥ half of its runs)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    suptitle(fig, title)
    return fig


def healthy_up_to(by_depth):
    """The largest depth up to which every tested depth has |log10 ratio| below the
    healthy bound (None: not even the shallowest); ``by_depth`` is depth -> ratio."""
    reached = None
    for depth, value in sorted(by_depth.items()):
        if not (np.isfinite(value) and abs(value) < HEALTHY_LOG10_RATIO):
            break
        reached = depth
    return reached


def _per_layer_slope(depths, values):
    """Slope of log10 ratio against depth (log10 gain per added layer), NaN if < 2 depths."""
    depths, values = np.asarray(depths, np.float64), np.asarray(values, np.float64)
    keep = np.isfinite(values)
    if np.unique(depths[keep]).size < 2:
        return np.nan
    return float(np.polyfit(depths[keep], values[keep], 1)[0])


def ratio_vs_depth_observations(layer_stats, runs):
    """Per activation, the depth up to which each init (and variant) keeps the ratio within a factor
    10 and up to which the diagnosis finds no pathology at init; the configurations where the two
    disagree; and the steepest per-layer change of the ratio."""
    by = tables.with_variant(runs, ("activation", "init", "depth"))
    extra = list(by[3:])   # ["variant"] when runs differ in a param beyond the standard axes
    ratios = tables.config_ratio(tables.grad_ratio(layer_stats, runs, INIT), runs, by)
    if not np.isfinite(ratios["value"]).any():
        return ["No finite gradient ratios at initialization: nothing to compare."]
    max_depth = int(ratios["depth"].max())
    judged = has_verdicts(runs)
    flagged = tables.flagged_configs(runs, by=by) if judged else set()
    with_verdict = tables.judged_configs(runs, by=by) if judged else set()
    sentences = []
    slopes, blind = [], []
    for activation, per_activation in ratios.groupby("activation"):
        parts = []
        for setting, per_init in per_activation.groupby(["init", *extra]):
            init, rest = setting[0], tuple(setting[1:])
            label = init + variant_text(per_init.iloc[0])

            def key(depth):
                return (activation, init, depth, *rest)
            by_depth = dict(zip(per_init["depth"].astype(int), per_init["value"]))
            parts.append(f"{label} {_up_to(healthy_up_to(by_depth))}"
                         + (f" / {_up_to(_clean_up_to(flagged, with_verdict, key, by_depth))}" if judged else ""))
            slopes.append((_per_layer_slope(per_init["depth"], per_init["value"]), activation, label))
            blind += [(activation, label, depth, key(depth)) for depth, value in by_depth.items()
                      if np.isfinite(value) and abs(value) < HEALTHY_LOG10_RATIO and key(depth) in flagged]
        heading = (f"{activation}, the largest depth up to which every tested depth has |log10 ratio| < "
                   f"{HEALTHY_LOG10_RATIO:g}" + (" / no pathology at init by the diagnosis" if judged else ""))
        sentences.append(f"{heading} (tested up to {max_depth}): {listing(parts, 10)}.")
    if blind:
        names = []
        for activation, label, depth, config in blind:
            group = runs[np.logical_and.reduce([runs[name] == value for name, value in zip(by, config)])]
            raised = group[~group["pathology_init"].isin(["none", "n/a"])]
            names.append(f"{activation} + {label} at depth {depth} ({main_pathology(raised)})")
        sentences.append(f"Inside the band but flagged by the diagnosis: {listing(names, 12)}. There the ratio "
                         "is blind: the weight gradient a₍ₗ₋₁₎ᵀ δₗ stays level while "
                         "the forward signal and the back-propagated error shrink together.")
    slopes = [entry for entry in slopes if np.isfinite(entry[0])]
    if slopes:
        slope, activation, label = max(slopes, key=lambda entry: abs(entry[0]))
        sentences.append(f"The ratio changes fastest with depth for {activation} + {label}: each added layer "
                         f"multiplies it by about {pow10(slope)} (fit over depths up to {max_depth}).")
    return sentences


def _up_to(reached):
    return "none" if reached is None else str(reached)


def _clean_up_to(flagged, judged, key, by_depth):
    """The largest depth up to which every tested depth of a setting (``key(depth)``: its configuration
    at that depth) is judged at init and not flagged."""
    reached = None
    for depth in sorted(by_depth):
        if key(depth) in flagged or key(depth) not in judged:
            break
        reached = depth
    return reached


SECTION = FigureSection(
    "ratio_vs_depth", "Gradients at initialization", "First-to-last layer gradient ratio against depth",
    lambda f, theory: fig_ratio_vs_depth(f.layer_stats, f.runs),
    lambda f: ("log10 of the layer-1 over the layer-L (output) gradient norm at initialization "
               "against depth, one line per initialization. The grey band is where the two norms "
               "are within a factor 10; it is not a health criterion on its own, because the ratio "
               "stays flat when the forward signal and the back-propagated error vanish together "
               "(Glorot & Bengio 2010, §4.2.2). A red cross marks a configuration that the "
               "per-layer diagnosis (`nncore.diagnosis`) flags at initialization."),
    lambda f: ratio_vs_depth_observations(f.layer_stats, f.runs))
