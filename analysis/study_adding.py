"""Study adding (conf/experiment/adding.yaml): which recurrent cell learns the adding problem at which
sequence length. A length x network map of the final validation MSE (mean over seeds), the training
curves, and the table of which network solved which length, every cell computed from the runs'
trainability (experiments.diagnose_time: trained = final validation MSE below 0.01, 6% of the
baseline 1/6 of always predicting 1).
"""
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from experiments import datasets, record

from . import recurrent
from .figures import new_figure, no_data_figure, ordered_colors, save_figure, styled, suptitle
from .tables import scalar_series

MAP, CURVES = "adding_map", "adding_curves"


def mse_map(runs):
    """net (rows) x T (columns): mean final validation MSE over the runs that did not diverge."""
    ok = runs[runs["outcome"] != "diverged"]
    return ok.pivot_table(index="net", columns="seq_len", values=record.LOSS_VAL, aggfunc="mean")


def solved_table(runs):
    """net x T: "k/n" runs trained (the job's trainability tag), "div" counted apart."""
    cells = {}
    for (net, T), group in runs.groupby(["net", "seq_len"]):
        trained = int((group["trainability"] == "trained").sum())
        diverged = int((group["trainability"] == "diverged").sum())
        cells[(net, T)] = f"{trained}/{len(group)}" + (f" ({diverged} div.)" if diverged else "")
    nets = list(dict.fromkeys(runs.sort_values("net")["net"]))
    lengths = sorted(runs["seq_len"].unique())
    return pd.DataFrame([[cells.get((n, T), "") for T in lengths] for n in nets], index=nets, columns=lengths)


@styled
def fig_map(table):
    title = "Adding problem: final validation MSE"
    if table.empty:
        return no_data_figure(title, "no runs")
    fig, axes = new_figure(1, 1, extra_width=1.5)
    ax = axes[0, 0]
    values = table.to_numpy(float)
    floor = max(np.nanmin(values), 1e-5) if np.isfinite(values).any() else 1e-5
    image = ax.imshow(values, cmap="viridis_r", norm=LogNorm(floor, max(np.nanmax(values), 0.2)), aspect="auto")
    fig.colorbar(image, ax=ax, label="val MSE (mean over seeds)")
    ax.set_xticks(range(table.shape[1]), [f"{int(T)}" for T in table.columns])
    ax.set_yticks(range(table.shape[0]), table.index)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", fontsize=7,
                        color="black" if values[i, j] < 0.01 else "white")  # viridis_r: light below 0.01
    ax.set(xlabel="sequence length T", title="baseline (always 1): 0.167; trained below 0.01")
    suptitle(fig, title)
    return fig


@styled
def fig_curves(scalars, runs):
    title = "Adding problem: validation MSE during training"
    if runs.empty:
        return no_data_figure(title, "no runs")
    lengths = sorted(runs["seq_len"].unique())
    fig, axes = new_figure(1, len(lengths), sharey=True, extra_width=1.0)
    colors = ordered_colors(sorted(runs["net"].unique()))
    for ax, T in zip(axes[0], lengths):
        for _, run in runs[runs["seq_len"] == T].sort_values("net").iterrows():
            steps, values = scalar_series(scalars, run["run_id"], record.LOSS_VAL)
            ax.plot(steps, values, color=colors[run["net"]], label=run["net"], linewidth=1, alpha=0.85)
        ax.axhline(datasets.ADDING_BASELINE_MSE, color="grey", linestyle=":", linewidth=1)
        ax.axhline(0.01, color="black", linestyle="--", linewidth=0.8)
        ax.set(yscale="log", xlabel="update", title=f"T = {int(T)}")
    axes[0, 0].set_ylabel("loss/val (MSE)")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[0, -1].legend(unique.values(), unique.keys(), fontsize=6)
    suptitle(fig, f"{title} (dotted: always predicting 1; dashed: 0.01)")
    return fig


def adding(frames, figure_dir):
    """The study's markdown lines."""
    _, frames = recurrent.split(frames)
    runs = recurrent.label_runs(frames.runs)
    table = mse_map(runs)
    save_figure(fig_map(table), figure_dir, MAP)
    save_figure(fig_curves(frames.scalars, runs), figure_dir, CURVES)
    seeds = runs["seed"].nunique()
    lines = ["## The adding problem over sequence length (adding)", "",
             f"- Always predicting 1 scores MSE 1/6 = {datasets.ADDING_BASELINE_MSE:.3f} in expectation (the sum of "
             "two U[0, 1] values has variance 2/12); a run is *trained* when its final validation MSE is below 0.01.",
             f"- {len(runs)} runs: {', '.join(sorted(runs['net'].unique()))} at T = "
             f"{', '.join(str(int(T)) for T in sorted(runs['seq_len'].unique()))}, {seeds} seed(s), "
             f"{', '.join(sorted(runs['optimizer'].unique()))}"
             + (f" with clip_norm {', '.join(f'{c:g}' for c in sorted(runs['clip_norm'].dropna().unique()))}"
                if runs["clip_norm"].notna().any() else "") + ".", "",
             f"![adding map](figures/{MAP}.png)", "",
             f"*Final validation MSE (mean over seeds that did not diverge) for each network and sequence length.* "
             f"([SVG](figures/{MAP}.svg))", "",
             f"![adding curves](figures/{CURVES}.png)", "",
             f"*Validation MSE against update, one line per run.* ([SVG](figures/{CURVES}.svg))", "",
             "Which network solved which length (runs trained / runs):", "",
             "| network | " + " | ".join(f"T = {int(T)}" for T in sorted(runs["seq_len"].unique())) + " |",
             "|---|" + "---|" * runs["seq_len"].nunique()]
    solved = solved_table(runs)
    for net, row in solved.iterrows():
        lines.append(f"| {net} | " + " | ".join(row) + " |")
    lines += ["", *[f"- {sentence}" for sentence in observations(runs, table)], ""]
    return lines


def observations(runs, table):
    out = []
    for net, group in runs.groupby("net"):
        solved = sorted(T for T, g in group.groupby("seq_len") if (g["trainability"] == "trained").all())
        failed = sorted(T for T, g in group.groupby("seq_len") if not (g["trainability"] == "trained").any())
        text = f"{net}: solved T = {', '.join(str(int(T)) for T in solved)} in every seed" if solved else \
            f"{net}: solved no length in every seed"
        if failed:
            at = table.loc[net, failed].to_numpy(float) if net in table.index else np.array([])
            text += (f"; no seed below 0.01 at T = {', '.join(str(int(T)) for T in failed)}"
                     + (f" (final MSE {', '.join(f'{v:.3g}' for v in at)})" if at.size else ""))
        out.append(text + ".")
    return out
