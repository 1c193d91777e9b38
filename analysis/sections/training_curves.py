"""Figure 10: training loss and validation accuracy against step at the largest depth of each
activation, one colour per optimizer; and which optimizer ends best there.
"""
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from experiments import record

from .. import tables
from ..figures import mark_empty, new_figure, no_data_figure, ordered_colors, positive, styled, suptitle
from ..observations import listing, mean_final_accuracy, variant_text
from ..selection import prefer
from .section import FigureSection

# Glorot & Bengio (2010) derived this initialization to keep variances depth-independent.
PREFERRED_CURVES_INIT = "xavier_uniform"


def curves_setup(runs, init=None):
    """(init, {activation: (depth, runs)}): for each activation, the runs at the
    largest depth with ``init`` (default: the preferred init when present)."""
    init = init or prefer(runs["init"], PREFERRED_CURVES_INIT)
    chosen = runs[runs["init"] == init]
    setup = {}
    for activation, group in chosen.groupby("activation"):
        depth = int(group["depth"].max())
        setup[activation] = (depth, group[group["depth"] == depth])
    return init, setup


CURVE_ROWS = ((record.LOSS_TRAIN, "training loss", True), (record.ACC_VAL, "validation accuracy", False))


@styled
def fig_training_curves(scalars, runs, init=None):
    """loss/train (log y) and acc/val against step, one line per optimizer (one per
    run when there are several seeds), for each activation at its largest depth
    with one init (default xavier_uniform, else the first)."""
    init, setup = curves_setup(runs, init)
    title = f"Training curves at the largest depth, init {init}"
    if not setup:
        return no_data_figure("Training curves at the largest depth", "no runs")
    shown = pd.concat([group for _, group in setup.values()])
    curves = scalars[scalars["run_id"].isin(shown["run_id"])]
    curves = curves[np.isfinite(curves["value"].to_numpy(np.float64))]
    if curves.empty:
        return no_data_figure(title, "no finite loss/train or acc/val values")
    activations = sorted(setup)
    colors = ordered_colors(sorted(runs["optimizer"].unique()))
    fig, axes = new_figure(len(CURVE_ROWS), len(activations), sharex="col", sharey="row")
    for col, activation in enumerate(activations):
        depth, group = setup[activation]
        for row, (metric, _, log_scale) in enumerate(CURVE_ROWS):
            ax = axes[row, col]
            drawn = 0
            for _, run in group.iterrows():
                line = curves[(curves["run_id"] == run["run_id"]) & (curves["name"] == metric)]
                line = positive(line) if log_scale else line
                if line.empty:
                    continue
                line = line.sort_values("step")
                ax.plot(line["step"], line["value"], color=colors[run["optimizer"]])
                if run["outcome"] == "diverged":
                    ax.plot(line["step"].iloc[-1], line["value"].iloc[-1], marker="X", markersize=7,
                            color=colors[run["optimizer"]], markeredgecolor="black", markeredgewidth=0.5)
                drawn += 1
            if drawn == 0:
                mark_empty(ax)
            if log_scale:
                ax.set_yscale("log")
            else:
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{activation} (depth {depth}): {metric}")
    for ax in axes[-1, :]:
        ax.set_xlabel("training step")
    for row, (_, label, _) in enumerate(CURVE_ROWS):
        axes[row, 0].set_ylabel(label)
    handles = [Line2D([], [], color=color, label=name) for name, color in colors.items()]
    handles.append(Line2D([], [], color="0.5", marker="X", linestyle="none", markeredgecolor="black",
                          label="diverged (last finite value)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    suptitle(fig, title)
    return fig


def curves_observations(runs, init=None):
    """Final validation accuracy per optimizer at the largest depth, per activation,
    and which optimizer wins how often."""
    init, setup = curves_setup(runs, init)
    if not setup:
        return ["No runs to compare."]
    sentences = []
    for activation, (depth, group) in sorted(setup.items()):
        _, parts = optimizer_scores(group)
        sentences.append(f"{activation} at depth {depth} ({init}), final validation accuracy: {listing(parts, 10)}.")
    summary = optimizer_summary(runs, init)
    return sentences + ([summary] if summary else [])


ACCURACY_TIE = 0.01  # final accuracies closer than this are reported as a tie


def optimizer_scores(group):
    """({optimizer: mean final acc/val}, [sentence part per optimizer]) for one slice; with variants
    (tables.with_variant) one entry per optimizer and variant, "sgd (optimizer.lr=50)"."""
    parts, scores = [], {}
    for key, per_optimizer in group.groupby(list(tables.with_variant(group, ("optimizer",)))):
        optimizer = key[0] + variant_text(per_optimizer.iloc[0])
        accuracy, n_diverged, n_runs = mean_final_accuracy(per_optimizer)
        if n_diverged == n_runs:
            parts.append(f"{optimizer} diverged")
            continue
        text = f"{optimizer} {accuracy:.2f}" if np.isfinite(accuracy) else f"{optimizer} n/a"
        parts.append(text + (f" ({n_diverged}/{n_runs} diverged)" if n_diverged else ""))
        if np.isfinite(accuracy):
            scores[optimizer] = accuracy
    return scores, parts


def optimizer_summary(runs, init=None):
    """One sentence: which optimizer reaches the highest final validation accuracy at
    the largest depth for how many activations (ties within ACCURACY_TIE counted
    apart), or None with fewer than two optimizers to compare."""
    init, setup = curves_setup(runs, init)
    winners = []
    for _, group in setup.values():
        scores, _ = optimizer_scores(group)
        if len(scores) > 1:
            ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
            winners.append(ranked[0][0] if ranked[0][1] - ranked[1][1] >= ACCURACY_TIE else None)
    if not winners:
        return None
    leaders = pd.Series([winner for winner in winners if winner is not None], dtype="str").value_counts()
    ties = winners.count(None)
    if leaders.empty:
        return (f"At the largest depth, with {init} init, the optimizers' final validation accuracies are within "
                f"{ACCURACY_TIE:g} of each other for all {len(winners)} activations.")
    tie_text = f" ({ties} tied within {ACCURACY_TIE:g})" if ties else ""
    return (f"At the largest depth, with {init} init, {leaders.index[0]} has the highest final validation "
            f"accuracy for {leaders.iloc[0]} of {len(winners)} activations{tie_text}.")


def curves_caption(frames):
    init, _ = curves_setup(frames.runs)
    return (f"Training loss (log scale) and validation accuracy against step at the largest depth of each "
            f"activation, init {init}; one colour per optimizer, a cross where a diverged run stops.")


SECTION = FigureSection(
    "training_curves", "Outcomes", "Training curves at the largest depth",
    lambda f, theory: fig_training_curves(f.scalars, f.runs),
    curves_caption,
    lambda f: curves_observations(f.runs))
