"""Figure 8: log10 of the weight-gradient norm over layers and training steps, for the deepest run of
each activation × init with one optimizer.
"""
import matplotlib
import numpy as np
import pandas as pd

from .. import tables
from ..figures import SEQUENTIAL, label_outer, mark_empty, new_figure, no_data_figure, styled, suptitle
from ..observations import config_name, listing, pow10
from ..selection import PREFERRED_OPTIMIZER, first_run, prefer
from ..tables import FINAL, INIT
from .section import FigureSection


def heatmap_runs(runs, optimizer=None):
    """(optimizer, runs): the deepest run of each activation x init for one optimizer."""
    optimizer = optimizer or prefer(runs["optimizer"], PREFERRED_OPTIMIZER)
    chosen = runs[runs["optimizer"] == optimizer]
    picked = []
    for _, group in chosen.groupby(["activation", "init"]):
        picked.append(first_run(group[group["depth"] == group["depth"].max()]))
    frame = pd.DataFrame(picked) if picked else runs.iloc[0:0]
    return optimizer, frame.reset_index(drop=True)


def _edges(centres):
    """Cell edges around sorted ``centres`` (midpoints, extended at both ends)."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def _color_limits(values):
    """Shared colour limits: the 1st-99th percentile of the finite values, so one
    overflowing probe does not wash out every panel."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return (low - 0.5, high + 0.5) if low == high else (low, high)


@styled
def fig_grad_heatmaps(layer_stats, runs, optimizer=None):
    """log10 grad_norm over layer x training step for the deepest network of each
    activation x init, for one optimizer (default sgd, else the first)."""
    optimizer, shown = heatmap_runs(runs, optimizer)
    title = f"log10 gradient norm per layer during training (deepest network of each panel, {optimizer})"
    if shown.empty:
        return no_data_figure("log10 gradient norm over layers and training", "no runs")
    grads = layer_stats[(layer_stats["stat"] == "grad_norm") & layer_stats["run_id"].isin(shown["run_id"])]
    grads = grads.assign(log10=tables.safe_log10(grads["value"]))
    if not np.isfinite(grads["log10"]).any():
        return no_data_figure(title, "no finite positive grad_norm")
    vmin, vmax = _color_limits(grads["log10"].to_numpy())
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="0.9")
    activations = sorted(shown["activation"].unique())
    inits = sorted(shown["init"].unique())
    fig, axes = new_figure(len(inits), len(activations), extra_width=1.0)
    mesh = None
    for row, init in enumerate(inits):
        for col, activation in enumerate(activations):
            ax = axes[row, col]
            ax.grid(False)
            match = shown[(shown["activation"] == activation) & (shown["init"] == init)]
            if match.empty:
                mark_empty(ax, "no run")
                ax.set_title(f"{activation} · {init}")
                continue
            run = match.iloc[0]
            ax.set_title(f"{activation} · {init} (depth {run['depth']})")
            cells = grads[grads["run_id"] == run["run_id"]]
            if cells.empty:
                mark_empty(ax)
                continue
            layers = np.arange(1, max(int(cells["layer"].max()), int(run["depth"]) + 1) + 1)
            grid = cells.pivot_table(index="layer", columns="step", values="log10", aggfunc="first",
                                     dropna=False).reindex(layers)
            mesh = ax.pcolormesh(_edges(grid.columns), _edges(layers), np.ma.masked_invalid(grid.to_numpy()),
                                 cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
            if run["outcome"] == "diverged":
                stop = run["diverged_step"]
                note = f"diverged at step {int(stop)}" if np.isfinite(stop) else "diverged"
                ax.text(0.97, 0.03, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    label_outer(axes, "training step", "layer $l$")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, label=r"$\log_{10}\|\partial L/\partial W_l\|_F$", shrink=0.8)
    suptitle(fig, title)
    return fig


def heatmap_observations(layer_stats, runs, optimizer=None):
    """For the runs the heatmaps show: the largest change of the gradient ratio over
    training, and which of them diverged."""
    optimizer, shown = heatmap_runs(runs, optimizer)
    if shown.empty:
        return ["No runs to show."]
    start = tables.grad_ratio(layer_stats, shown, INIT)
    end = tables.grad_ratio(layer_stats, shown, FINAL)
    last = tables.last_steps(layer_stats[layer_stats["run_id"].isin(shown["run_id"])])
    change = (end - start).abs().dropna()
    sentences = []
    if not change.empty:
        run_id = change.idxmax()
        sentences.append(f"With {optimizer}, the layer-1 / layer-L gradient ratio changes most for "
                         f"{config_name(shown.set_index('run_id').loc[run_id])}: from {pow10(start[run_id])} at step 0 to "
                         f"{pow10(end[run_id])} at step {int(last[run_id])}.")
    else:
        sentences.append("No shown run has a finite gradient ratio both at step 0 and at its last step.")
    diverged = shown[shown["outcome"] == "diverged"]
    if not diverged.empty:
        names = [f"{config_name(row)} (step {int(row['diverged_step'])})" if np.isfinite(row["diverged_step"])
                 else config_name(row) for _, row in diverged.iterrows()]
        sentences.append(f"{len(diverged)} of the {len(shown)} networks shown diverged: {listing(names)}.")
    return sentences


def heatmap_caption(frames):
    optimizer, _ = heatmap_runs(frames.runs)
    return (f"log10 of the weight-gradient norm of every layer (rows) at every logged step (columns), for the "
            f"deepest network of each activation × init trained with {optimizer}. Colours share one scale; "
            "grey cells are missing, non-finite or zero (underflowed) gradient norms.")


SECTION = FigureSection(
    "grad_heatmaps", "During and after training", "Gradient norm over layers and training",
    lambda f, theory: fig_grad_heatmaps(f.layer_stats, f.runs),
    heatmap_caption,
    lambda f: heatmap_observations(f.layer_stats, f.runs))
