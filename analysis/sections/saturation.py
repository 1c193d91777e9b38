"""Figure 9: one run's hidden-layer activations during training (mean ± std, as Glorot & Bengio 2010,
Fig. 2), its saturated fraction and its dead units.
"""
import numpy as np
import pandas as pd

from .. import tables
from ..figures import layer_colorbar, new_figure, no_data_figure, styled, suptitle
from ..observations import config_name, finite_rows
from ..selection import PREFERRED_OPTIMIZER, first_run, prefer
from .section import FigureSection


# Glorot & Bengio (2010) Fig. 2: sigmoid with the "standard" uniform initialization.
PREFERRED_SATURATION = ("sigmoid", "uniform")


def middle_depth(depths):
    """The middle of the sorted distinct ``depths`` (the lower one of two middles)."""
    ordered = sorted(set(int(depth) for depth in depths))
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def saturation_run(runs, run_id=None):
    """The run shown by the saturation figure: ``run_id``, else the preferred
    activation + init at the middle depth with the preferred optimizer."""
    if run_id is not None:
        match = runs[runs["run_id"] == run_id]
        return None if match.empty else match.iloc[0]
    activation = prefer(runs["activation"], PREFERRED_SATURATION[0])
    candidates = runs[runs["activation"] == activation]
    init = prefer(candidates["init"], PREFERRED_SATURATION[1])
    candidates = candidates[candidates["init"] == init]
    candidates = candidates[candidates["depth"] == middle_depth(candidates["depth"])]
    optimizer = prefer(candidates["optimizer"], PREFERRED_OPTIMIZER)
    return first_run(candidates[candidates["optimizer"] == optimizer])


SATURATION_PANELS = (
    ("activation mean ± std per hidden layer", "activation value"),
    (r"saturated fraction ($\phi' < 0.1\,\max\phi'$)", "fraction of unit-examples"),
    ("dead units (saturated on every example)", "fraction of units"),
)


@styled
def fig_saturation(layer_stats, runs, run_id=None):
    """Glorot & Bengio (2010) Fig. 2 style for one run (default: sigmoid + uniform at
    the middle depth when present): the mean activation of each hidden layer with a
    ±1 std band against step, and the saturated and dead-unit fractions per layer."""
    run = saturation_run(runs, run_id)
    if run is None:
        return no_data_figure("Activations and saturation during training", "no runs")
    depth = int(run["depth"])
    title = (f"Activations and saturation during training: {run['activation']} + {run['init']}, "
             f"depth {depth}, {run['optimizer']}, seed {run['seed']}")
    if run["outcome"] == "diverged":
        title += " (diverged)"
    rows = layer_stats[(layer_stats["run_id"] == run["run_id"]) & (layer_stats["layer"] <= depth)]
    rows = tables.finite(rows)
    stats = rows.pivot_table(index=["layer", "step"], columns="stat", values="value", aggfunc="first")
    needed = ["act_mean", "act_var", "saturation", "dead_frac"]
    if stats.empty or any(name not in stats.columns for name in needed):
        return no_data_figure(title, "no act_mean/act_var/saturation/dead_frac for the hidden layers")
    fig, axes = new_figure(1, len(SATURATION_PANELS), sharex=True, extra_width=1.0)
    color_of = layer_colorbar(fig, axes, depth, label="hidden layer $l$")
    mean_ax, saturation_ax, dead_ax = axes[0]
    for layer, per_step in stats.groupby(level="layer"):
        per_step = per_step.droplevel("layer").sort_index()
        steps = per_step.index.to_numpy()
        color = color_of(layer)
        mean = per_step["act_mean"].to_numpy(np.float64)
        std = np.sqrt(np.clip(per_step["act_var"].to_numpy(np.float64), 0.0, None))
        band = np.isfinite(mean) & np.isfinite(std)
        mean_ax.plot(steps[band], mean[band], color=color)
        mean_ax.fill_between(steps[band], (mean - std)[band], (mean + std)[band], color=color,
                             alpha=0.12, linewidth=0)
        for ax, stat in ((saturation_ax, "saturation"), (dead_ax, "dead_frac")):
            values = per_step[stat].to_numpy(np.float64)
            keep = np.isfinite(values)
            ax.plot(steps[keep], values[keep], color=color)
    for ax, (panel_title, ylabel) in zip(axes[0], SATURATION_PANELS):
        ax.set_title(panel_title)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
    for ax in (saturation_ax, dead_ax):
        ax.set_ylim(-0.02, 1.02)
    suptitle(fig, title)
    return fig


NEGLIGIBLE_FRACTION = 0.005  # saturated fractions below this print as 0.00: say "none" instead


def saturation_observations(layer_stats, runs, run_id=None):
    """For the run of the saturation figure: the top hidden layer's saturation and mean
    at init and at the end, and the most saturated / most dead layers at the end."""
    run = saturation_run(runs, run_id)
    if run is None:
        return ["No runs to show."]
    depth = int(run["depth"])
    rows = layer_stats[(layer_stats["run_id"] == run["run_id"]) & (layer_stats["layer"] <= depth)]
    rows = finite_rows(rows)
    stats = rows.pivot_table(index=["step", "layer"], columns="stat", values="value", aggfunc="first")
    if stats.empty or "saturation" not in stats or "act_mean" not in stats:
        return [f"No saturation or activation statistics for {config_name(run, True)}."]
    steps = stats.index.get_level_values("step")
    first, last = int(steps.min()), int(steps.max())
    name = config_name(run, with_optimizer=True)
    sentences = []
    if (first, depth) in stats.index and (last, depth) in stats.index:
        top_start, top_end = stats.loc[(first, depth)], stats.loc[(last, depth)]
        sentences.append(f"In {name}, the saturated fraction of the top hidden layer (layer {depth}) goes from "
                         f"{top_start['saturation']:.2f} at step {first} to {top_end['saturation']:.2f} at step "
                         f"{last}, and its mean activation from {top_start['act_mean']:.2f} to "
                         f"{top_end['act_mean']:.2f}.")
    at_end = stats.loc[last]
    saturation = at_end["saturation"].dropna()
    if saturation.empty:
        return sentences
    if saturation.max() < NEGLIGIBLE_FRACTION:
        sentences.append(f"At step {last} every hidden layer has a saturated fraction below {NEGLIGIBLE_FRACTION:g}.")
        return sentences
    most = saturation.idxmax()
    sentence = f"At step {last} the most saturated layer is layer {most} ({saturation[most]:.2f})"
    dead = at_end["dead_frac"].dropna() if "dead_frac" in at_end else pd.Series(dtype="float64")
    if not dead.empty:
        sentence += f"; the largest dead-unit fraction is {dead.max():.2f} (layer {dead.idxmax()})"
    sentences.append(sentence + ".")
    return sentences


def saturation_caption(frames):
    run = saturation_run(frames.runs)
    shown = config_name(run, with_optimizer=True) if run is not None else "no run"
    return (f"{shown}: mean activation of each hidden layer with a ±1 std band over training (as Glorot & "
            "Bengio 2010, Fig. 2), the fraction of saturated unit-examples (φ′ below 10% of its maximum) and "
            "the fraction of units saturated on every probe example (dead).")


SECTION = FigureSection(
    "saturation", "During and after training", "Activations and saturation during training",
    lambda f, theory: fig_saturation(f.layer_stats, f.runs),
    saturation_caption,
    lambda f: saturation_observations(f.layer_stats, f.runs))
