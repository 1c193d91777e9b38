"""Figure 11: the final validation accuracy over the whole grid, diverged cells hatched; and the best
and worst configurations.
"""
import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from ..figures import SEQUENTIAL, label_outer, new_figure, no_data_figure, styled, suptitle
from ..observations import config_name, finite_rows, listing
from .section import FigureSection


def _outcome_cells(runs, activation, optimizer, inits, depths):
    """(mean acc/val matrix, diverged-count matrix, run-count matrix) over init x depth;
    the mean is over seeds that did not diverge."""
    shape = (len(inits), len(depths))
    accuracy, diverged, total = np.full(shape, np.nan), np.zeros(shape, int), np.zeros(shape, int)
    panel = runs[(runs["activation"] == activation) & (runs["optimizer"] == optimizer)]
    for (init, depth), group in panel.groupby(["init", "depth"]):
        i, j = inits.index(init), depths.index(depth)
        is_diverged = (group["outcome"] == "diverged").to_numpy()
        total[i, j], diverged[i, j] = len(group), int(is_diverged.sum())
        values = group.loc[~is_diverged, "acc/val"].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            accuracy[i, j] = values.mean()
    return accuracy, diverged, total


def _cell_text(accuracy, diverged, total):
    if total == 0:
        return ""
    if diverged == total:
        return "div."  # the whole word does not fit a cell of a 5-depth panel
    text = f"{accuracy:.2f}" if np.isfinite(accuracy) else "n/a"
    return f"{text}\n{diverged}/{total} div." if diverged else text


@styled
def fig_outcome_map(runs):
    """Final validation accuracy over depth x init, one panel per activation x
    optimizer; cells with diverged runs are hatched and say how many diverged."""
    title = "Final validation accuracy (mean over seeds that did not diverge); hatched: diverged runs"
    if runs.empty:
        return no_data_figure("Final validation accuracy", "no runs")
    activations = sorted(runs["activation"].unique())
    optimizers = sorted(runs["optimizer"].unique())
    inits = sorted(runs["init"].unique())
    depths = sorted(int(depth) for depth in runs["depth"].unique())
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="0.88")
    fig, axes = new_figure(len(optimizers), len(activations), extra_width=1.2)
    image = None
    for row, optimizer in enumerate(optimizers):
        for col, activation in enumerate(activations):
            ax = axes[row, col]
            ax.grid(False)
            accuracy, diverged, total = _outcome_cells(runs, activation, optimizer, inits, depths)
            image = ax.imshow(np.ma.masked_invalid(accuracy), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
            for i in range(len(inits)):
                for j in range(len(depths)):
                    if diverged[i, j]:
                        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx",
                                               edgecolor="0.25", linewidth=0))
                    dark = np.isfinite(accuracy[i, j]) and accuracy[i, j] < 0.6
                    text = _cell_text(accuracy[i, j], diverged[i, j], total[i, j])
                    # A white box keeps the text legible over the hatching.
                    box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0} if diverged[i, j] else None
                    ax.text(j, i, text, ha="center", va="center", fontsize=6.5, bbox=box,
                            color="black" if box or not dark else "white")
            ax.set_xticks(range(len(depths)), [str(depth) for depth in depths])
            ax.set_yticks(range(len(inits)), inits if col == 0 else [""] * len(inits))
            ax.set_title(f"{activation} · {optimizer}")
    label_outer(axes, "depth", "init")
    fig.colorbar(image, ax=axes, label="final validation accuracy", shrink=0.8)
    suptitle(fig, title)
    return fig


def outcome_observations(runs):
    """How many runs diverged (and which), the best and worst final accuracy, and the
    mean accuracy per optimizer."""
    if runs.empty:
        return ["No runs."]
    multiple_seeds = runs["seed"].nunique() > 1
    diverged = runs[runs["outcome"] == "diverged"]
    sentences = []
    if diverged.empty:
        sentences.append(f"None of the {len(runs)} runs diverged.")
    else:
        names = [config_name(row, with_optimizer=True, with_seed=multiple_seeds) for _, row in diverged.iterrows()]
        sentences.append(f"{len(diverged)} of {len(runs)} runs diverged: {listing(names)}.")
    unfinished = runs[runs["status"] != "FINISHED"]
    if not unfinished.empty:
        counts = unfinished["status"].value_counts()
        sentences.append(f"{len(unfinished)} run(s) did not finish ("
                         + ", ".join(f"{count} {status}" for status, count in counts.items()) + ").")
    best_worst = best_and_worst(runs)
    if best_worst:
        sentences.append(best_worst)
    completed = finite_rows(runs[runs["outcome"] != "diverged"], "acc/val")
    if completed["optimizer"].nunique() > 1:
        means = completed.groupby("optimizer")["acc/val"].mean().sort_values(ascending=False)
        sentences.append("Mean final validation accuracy by optimizer (runs that did not diverge): "
                         + ", ".join(f"{name} {value:.2f}" for name, value in means.items()) + ".")
    return sentences


def best_and_worst(runs):
    """The best and the worst final validation accuracy among runs that did not
    diverge, with how many runs share each value; None without such runs."""
    completed = finite_rows(runs[runs["outcome"] != "diverged"], "acc/val")
    if completed.empty:
        return None
    multiple_seeds = runs["seed"].nunique() > 1

    def described(row):
        others = int((completed["acc/val"].round(3) == round(row["acc/val"], 3)).sum()) - 1
        return config_name(row, True, multiple_seeds) + (f", and {others} more run(s)" if others else "")
    best = completed.loc[completed["acc/val"].idxmax()]
    worst = completed.loc[completed["acc/val"].idxmin()]
    return (f"Best final validation accuracy: {best['acc/val']:.3f} ({described(best)}); worst among runs that "
            f"did not diverge: {worst['acc/val']:.3f} ({described(worst)}).")


SECTION = FigureSection(
    "outcome_map", "Outcomes", "Final validation accuracy over the grid",
    lambda f, theory: fig_outcome_map(f.runs),
    lambda f: ("Final validation accuracy, mean over the seeds that did not diverge, for every depth "
               "and initialization; one panel per activation and optimizer. Hatched cells hold "
               "diverged runs (\"k/n div.\": k of the cell's n runs diverged; \"div.\": all)."),
    lambda f: outcome_observations(f.runs))
