"""Study clipping (conf/experiment/clipping.yaml; Pascanu et al. 2013): an IRNN at T = 100 under SGD,
without and with clip_norm. Every update's gradient norm before clipping (grad_norm/train) against
the threshold, and what each run became: diverged (its loss or gradient non-finite, at which update)
or not, the fraction of updates clipped and its final validation MSE.
"""
import numpy as np

from experiments import record

from . import recurrent
from .figures import new_figure, no_data_figure, ordered_colors, save_figure, styled, suptitle
from .tables import scalar_series

FIGURE = "clipping_grad_norm"


def clip_label(run):
    clip = run.get("clip_norm", np.nan)
    return f"clip_norm = {clip:g}" if np.isfinite(clip) else "no clipping"


@styled
def fig_clipping(scalars, runs):
    title = "Gradient norm before clipping, every update"
    if runs.empty:
        return no_data_figure(title, "no runs")
    fig, axes = new_figure(1, 1, extra_width=1.6)
    ax = axes[0, 0]
    colors = ordered_colors([clip_label(r) for _, r in runs.iterrows()])
    for _, run in runs.iterrows():
        steps, values = scalar_series(scalars, run["run_id"], record.GRAD_NORM_TRAIN)
        label = clip_label(run)
        with np.errstate(invalid="ignore"):
            shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
        ax.plot(steps, shown, color=colors[label], label=label, linewidth=0.8)
        if np.isfinite(run.get("clip_norm", np.nan)):
            ax.axhline(run["clip_norm"], color=colors[label], linestyle="--", linewidth=1)
        if np.isfinite(run.get(record.DIVERGED_STEP, np.nan)):
            finite = np.isfinite(shown)
            y = shown[finite][-1] if finite.any() else 1.0
            ax.plot([run[record.DIVERGED_STEP]], [y], marker="x", color="red", markersize=9, linestyle="none")
    ax.set(yscale="log", xlabel="update", ylabel="grad_norm/train (before clipping)")
    ax.legend(fontsize=7)
    suptitle(fig, f"{title}: {recurrent.net_label(runs.iloc[0])}, T = {int(runs['seq_len'].max())}, "
                  f"{runs['optimizer'].iloc[0]} (dashed: the threshold; x: diverged)")
    return fig


def clipping(frames, figure_dir):
    """The study's markdown lines."""
    _, frames = recurrent.split(frames)
    runs = frames.runs
    save_figure(fig_clipping(frames.scalars, runs), figure_dir, FIGURE)
    lines = ["## Gradient clipping (clipping)", "", f"![clipping](figures/{FIGURE}.png)", "",
             "*The global gradient norm of every training batch before clipping (grad_norm/train; with clipping the "
             "update uses the norm scaled down to the threshold), one line per run; a red cross where a run's "
             f"loss or gradient became non-finite.* ([SVG](figures/{FIGURE}.svg))", ""]
    lines += [f"- {sentence}" for sentence in observations(frames.scalars, runs)] + [""]
    return lines


def observations(scalars, runs):
    out = []
    for _, run in runs.sort_values("clip_norm", na_position="first").iterrows():
        steps, values = scalar_series(scalars, run["run_id"], record.GRAD_NORM_TRAIN)
        finite = values[np.isfinite(values)]
        peak = f"largest pre-clip norm {finite.max():.3g}, median {np.median(finite):.3g}" if finite.size else \
            "no finite pre-clip norm"
        if np.isfinite(run.get(record.DIVERGED_STEP, np.nan)):
            fate = f"diverged at update {int(run[record.DIVERGED_STEP])}"
        else:
            fate = (f"stayed finite for all {int(steps.max()) if steps.size else 0} updates, final validation MSE "
                    f"{run[record.LOSS_VAL]:.4g} ({run.get('trainability')})")
        clipped = run.get("clipped_fraction", np.nan)
        clip_text = f"; {clipped:.1%} of the updates clipped" if np.isfinite(clipped) else ""
        out.append(f"{clip_label(run)}: {fate}; {peak}{clip_text}.")
    return out
