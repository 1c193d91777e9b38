"""Study he2015 (conf/experiment/he2015.yaml; He et al. 2015): a deep ReLU network trained from Xavier
and from He initialization. Its training loss and validation accuracy against step, and per init how
much the loss fell over training: it learns, or it stalls (within 5%).
"""
from experiments import record

from . import figures
from .figures import new_figure, no_data_figure, save_figure, styled, suptitle
from .sections.section import figure_lines
from .tables import scalar_series


@styled
def fig_he2015(scalars, runs):
    title = "He et al. 2015: deep ReLU network, Xavier vs He initialization"
    if runs.empty:
        return no_data_figure(title, "no runs")
    fig, axes = new_figure(1, 2, extra_width=0.4)
    colors = figures.ordered_colors(sorted(runs["init"].unique()))
    for _, run in runs.iterrows():
        for ax, name in zip(axes[0], (record.LOSS_TRAIN, record.ACC_VAL)):
            steps, values = scalar_series(scalars, run["run_id"], name)
            ax.plot(steps, values, color=colors[run["init"]], label=run["init"])
    axes[0, 0].set(xlabel="step", ylabel="loss/train (probe batch)", title="training loss")
    axes[0, 1].set(xlabel="step", ylabel="acc/val", title="validation accuracy", ylim=(0, 1))
    axes[0, 1].legend(title="init", fontsize=7)
    suptitle(fig, f"{title} (depth {int(runs['depth'].max())}, width {int(runs['width'].max())}, "
                  f"{runs['optimizer'].iloc[0]})")
    return fig


def he2015(frames, figure_dir):
    runs, scalars = frames.runs, frames.scalars
    save_figure(fig_he2015(scalars, runs), figure_dir, "he2015_curves")
    lines = ["## He et al. 2015", ""]
    lines += figure_lines("he2015_curves", "Xavier vs He", "Training loss and validation accuracy of a deep ReLU "
                           "network from Xavier and He initialization.")
    for _, run in runs.sort_values("init").iterrows():
        steps, loss = scalar_series(scalars, run["run_id"], record.LOSS_TRAIN)
        _, acc = scalar_series(scalars, run["run_id"], record.ACC_VAL)
        if loss.size < 2:
            continue
        change = (loss[-1] - loss[0]) / loss[0]
        verdict = "stalls" if abs(change) < 0.05 else "learns"
        lines.append(f"- {run['init']}: loss {loss[0]:.3f} -> {loss[-1]:.3f} ({100 * change:+.1f}%) over "
                     f"{int(steps[-1])} steps, final validation accuracy {acc[-1]:.3f}: it {verdict}.")
    lines.append("")
    return lines
