"""Study symmetry (conf/experiment/symmetry.yaml): with a constant init every unit of a hidden layer
computes the same function and gets the same gradient; xavier_uniform is the control. unit_spread (how
far apart a layer's units are) over training, and per run whether its units ever became different.
"""
from . import figures
from .figures import new_figure, no_data_figure, save_figure, styled, suptitle
from .sections.section import figure_lines


@styled
def fig_symmetry(layer_stats, runs):
    title = "Symmetry: how far apart the units of each hidden layer are"
    if runs.empty:
        return no_data_figure(title, "no runs")
    activations = sorted(runs["activation"].unique())
    fig, axes = new_figure(1, len(activations), sharey=True)
    colors = figures.ordered_colors(sorted(runs["init"].unique()))
    for ax, activation in zip(axes[0], activations):
        for _, run in runs[runs["activation"] == activation].iterrows():
            rows = layer_stats[(layer_stats["run_id"] == run["run_id"]) & (layer_stats["stat"] == "unit_spread")
                               & (layer_stats["layer"] <= int(run["depth"]))]
            spread = rows.groupby("step")["value"].max()
            ax.plot(spread.index, spread.to_numpy(), color=colors[run["init"]], label=run["init"])
        ax.set(title=activation, xlabel="step")
    axes[0, 0].set_ylabel("max over hidden layers of unit_spread")
    axes[0, -1].legend(title="init", fontsize=7)
    suptitle(fig, title)
    return fig


def symmetry(frames, figure_dir):
    runs, stats = frames.runs, frames.layer_stats
    save_figure(fig_symmetry(stats, runs), figure_dir, "symmetry")
    lines = ["## The symmetry problem", ""]
    lines += figure_lines("symmetry", "Symmetry", "unit_spread (max over a layer's units of the distance of "
                           "their incoming weights from unit 1's, relative to their RMS norm) of the hidden layers "
                           "during training: 0 means every unit of the layer is the same unit.")
    for _, run in runs.sort_values(["activation", "init"]).iterrows():
        rows = stats[(stats["run_id"] == run["run_id"]) & (stats["stat"] == "unit_spread")
                     & (stats["layer"] <= int(run["depth"]))]
        if rows.empty:
            continue
        worst = rows["value"].max()
        steps = int(rows["step"].max())
        if worst == 0:
            verdict = (f"all {int(run['width'])} units of every hidden layer stay identical (unit_spread exactly 0) "
                       f"for all {steps} steps: an effective width of 1")
        else:
            verdict = f"unit_spread up to {worst:.3g} (at least {rows['value'].min():.3g}): the units differ"
        lines.append(f"- {run['activation']} + {run['init']}: {verdict}; final val accuracy {run['acc/val']:.3f}.")
    lines.append("")
    return lines
