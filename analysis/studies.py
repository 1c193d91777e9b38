"""Report sections of the named experiments (conf/experiment/): each draws its own
figures and states what its runs show, with numbers computed from them.

    section = study_section("he2015", frames, figure_dir)   # markdown lines, [] if unknown
"""
import math

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from experiments import record
from experiments.images import cell_edges
from nncore import theory as mf

from . import figures
from .remedies import remedies
from .sections import histograms, saturation
from .study_adding import adding
from .study_clipping import clipping
from .study_isometry import isometry
from .study_rnn_init import rnn_init
from .figures import new_figure, no_data_figure, save_figure, styled, suptitle


def _init_stat(layer_stats, run_id, stat, step=0):
    rows = layer_stats[(layer_stats["run_id"] == run_id) & (layer_stats["stat"] == stat)
                       & (layer_stats["step"] == step)]
    return rows.sort_values("layer")["value"].to_numpy()


def _curve(scalars, run_id, name):
    rows = scalars[(scalars["run_id"] == run_id) & (scalars["name"] == name)].sort_values("step")
    return rows["step"].to_numpy(), rows["value"].to_numpy()


def _pick(runs, **where):
    rows = runs
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return None if rows.empty else rows.iloc[0]


def _figure_lines(number_name, title, caption, directory):
    return [f"![{title}](figures/{number_name}.png)", "", f"*{caption}* ([SVG](figures/{number_name}.svg))", ""]


# --------------------------------------------------------------------------- glorot2010

def glorot2010(frames, figure_dir):
    runs, stats = frames.runs, frames.layer_stats
    lines = ["## Glorot & Bengio 2010", ""]
    sig = _pick(runs, activation="sigmoid", init="uniform")
    if sig is not None:
        save_figure(saturation.fig_saturation(stats, runs, run_id=sig["run_id"]), figure_dir, "glorot_fig2_saturation")
        depth = int(sig["depth"])
        top = stats[(stats["run_id"] == sig["run_id"]) & (stats["layer"] == depth)]
        mean = top[top["stat"] == "act_mean"].sort_values("step")
        lines += _figure_lines("glorot_fig2_saturation", "Sigmoid activations during training",
                               f"Glorot & Bengio Fig. 2: mean and spread of each hidden layer's sigmoid output during "
                               f"training (sigmoid + uniform, depth {depth}, width {int(sig['width'])}).", figure_dir)
        if not mean.empty:
            lines += fig2_sentences(stats, sig["run_id"], depth)
        lines.append("")
    act_for_hist = "tanh" if (runs["activation"] == "tanh").any() else runs["activation"].iloc[0]
    save_figure(histograms.fig_histograms(frames.histograms, runs, activation=act_for_hist,
                                       inits=("uniform", "xavier_uniform")), figure_dir, "glorot_fig6_7_histograms")
    lines += _figure_lines("glorot_fig6_7_histograms", "Histograms at initialization",
                           f"Glorot & Bengio Figs. 6-7: activations and back-propagated errors of each hidden layer at "
                           f"initialization ({act_for_hist}), standard (uniform) vs normalized (xavier_uniform) init.",
                           figure_dir)
    rows = []
    for (activation, init), group in runs.groupby(["activation", "init"]):
        run = group.iloc[0]
        depth = int(run["depth"])
        act = _init_stat(stats, run["run_id"], "act_var")[:depth]
        delta = _init_stat(stats, run["run_id"], "delta_ms")[:depth]
        grad = _init_stat(stats, run["run_id"], "grad_norm")[:depth]
        if act.size < 2:
            continue
        rows.append((activation, init, math.sqrt(act[-1] / act[0]), math.sqrt(delta[0] / delta[-1]), grad[0] / grad[-1]))
    if rows:
        lines += ["Ratios at initialization between hidden layer 1 and the top hidden layer (Figs. 6-8): "
                  "std of activations (top / first: below 1 means the forward signal shrinks), RMS back-propagated "
                  "error (first / top: below 1 means it shrinks toward the input) and weight-gradient norm "
                  "(first / top).", "",
                  "| activation | init | act std top/first | error RMS first/top | weight grad first/top |",
                  "|---|---|---|---|---|"]
        lines += [f"| {a} | {i} | {x:.3g} | {d:.3g} | {g:.3g} |" for a, i, x, d, g in rows] + [""]
        table = pd.DataFrame(rows, columns=["activation", "init", "act", "delta", "grad"])
        for activation, group in table.groupby("activation"):
            std = group[group["init"] == "uniform"]
            norm = group[group["init"] == "xavier_uniform"]
            if std.empty or norm.empty:
                continue
            s, n = std.iloc[0], norm.iloc[0]
            lines.append(f"- {activation}: the back-propagated error shrinks by x{s['delta']:.2g} from the top hidden "
                         f"layer to layer 1 under standard init and x{n['delta']:.2g} under normalized init; the "
                         f"weight-gradient ratio is {s['grad']:.2g} vs {n['grad']:.2g}.")
        lines.append("")
    lines += jacobian_table(stats, runs)
    return lines


# Glorot & Bengio 2010, section 4.2.1, on their networks of equal-width hidden layers (tanh, as in their Figs.
# 6-7): "With our normalized initialization, this ratio [the average singular value of each layer's Jacobian] is
# around 0.8 whereas with the standard initialization, it drops down to 0.5."
GLOROT_SINGULAR_VALUES = {("tanh", "xavier_uniform"): 0.8, ("tanh", "uniform"): 0.5}
RECOVERY_RISE = 0.05  # display choice: a top-layer mean this far above its lowest counts as coming back up


def fig2_sentences(stats, run_id, depth):
    """Fig. 2's numbers for one run: the top hidden layer's lowest mean activation and its step, the
    lower layers' means at that step, the fraction near the lower bound (near_lower_bound), and
    whether the top layer came back up by the last step."""
    rows = stats[(stats["run_id"] == run_id) & (stats["layer"] <= depth)]
    top = rows[rows["layer"] == depth]
    mean = top[top["stat"] == "act_mean"].sort_values("step").dropna(subset=["value"])
    near = top[top["stat"] == "near_lower_bound"].set_index("step")["value"]
    if mean.empty:
        return []
    lowest = mean.loc[mean["value"].idxmin()]
    step, last = int(lowest["step"]), mean.iloc[-1]
    near_text = ("" if near.dropna().empty or step not in near.index else
                 f"; there {100 * near[step]:.1f}% of its activations are near the lower bound 0 (sigmoid < 0.05, the "
                 f"paper's saturation; at most {100 * near.max():.1f}% over training, {100 * near.iloc[0]:.1f}% at init)")
    lines = [f"- Top hidden layer (layer {depth}): mean activation {mean['value'].iloc[0]:.3f} at initialization, "
             f"lowest {lowest['value']:.4f} at step {step} of {int(mean['step'].max())}{near_text}."]
    others = rows[(rows["stat"] == "act_mean") & (rows["layer"] < depth) & (rows["step"] == step)].sort_values("layer")
    if not others.empty:
        values = ", ".join(f"layer {int(r.layer)} {r.value:.3f}" for r in others.itertuples())
        below = lowest["value"] < others["value"].min()
        lines.append(f"- At that step the lower hidden layers' mean activations are {values}: "
                     + ("the top layer is the one driven toward 0, as in the paper"
                        if below else "the top layer is not the lowest here, unlike the paper")
                     + (f"; every lower layer stays above 0.5, as in the paper." if (others["value"] > 0.5).all()
                        else f"; {int((others['value'] <= 0.5).sum())} lower layer(s) at or below 0.5."))
    rise = last["value"] - lowest["value"]
    lines.append(f"- By the last step ({int(last['step'])}) the top layer's mean is {last['value']:.4f}"
                 + (f": it has come back up by {rise:.3f} from its lowest (the paper's slow desaturation)."
                    if rise > RECOVERY_RISE else ": it has not come back up within this budget (the paper's recovery took "
                                        "many epochs)."))
    return lines


def jacobian_table(stats, runs):
    """Glorot & Bengio's section 4.2 measure: the average singular value of each layer's Jacobian
    d a_l / d a_(l-1) at initialization (the Jacobian probe's jacobian_sv_mean), standard vs normalized init."""
    rows = stats[(stats["stat"] == record.LAYER_JACOBIAN_STAT) & (stats["step"] == 0)]
    if rows.empty:
        return []
    depth = int(runs["depth"].max())
    header = " | ".join(f"layer {l}" for l in range(1, depth + 1))
    lines = ["Average singular value of each hidden layer's Jacobian d a_l / d a_(l-1) at initialization "
             "(Glorot & Bengio 2010, section 4.2; one probe input; layer 1 maps the 64 inputs to the first "
             "hidden layer, so it is not square). The paper (section 4.2.1, tanh): about 0.8 with normalized init "
             "and 0.5 with standard init, for layers of equal width.", "",
             f"| activation | init | {header} | mean of layers 2-{depth} | paper |",
             "|---|---|" + "---|" * depth + "---|---|"]
    summary = []
    for (activation, init), group in runs.groupby(["activation", "init"]):
        run = group.iloc[0]
        sv = rows[rows["run_id"] == run["run_id"]].set_index("layer")["value"]
        values = [sv.get(l, np.nan) for l in range(1, depth + 1)]
        square = float(np.nanmean(values[1:])) if depth > 1 else np.nan
        paper = GLOROT_SINGULAR_VALUES.get((activation, init))
        lines.append(f"| {activation} | {init} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | {square:.3f} | {'n/a' if paper is None else f'about {paper}'} |")
        summary.append((activation, init, square))
    lines.append("")
    table = pd.DataFrame(summary, columns=["activation", "init", "mean"])
    for activation, group in table.groupby("activation"):
        got = dict(zip(group["init"], group["mean"]))
        if {"uniform", "xavier_uniform"} <= set(got):
            paper = [GLOROT_SINGULAR_VALUES.get((activation, init)) for init in ("xavier_uniform", "uniform")]
            lines.append(f"- {activation}: {got['xavier_uniform']:.2f} with normalized init and {got['uniform']:.2f} "
                         f"with standard init, layers 2-{depth}"
                         + (f" (paper: about {paper[0]} and {paper[1]})." if None not in paper else
                            " (the paper gives its numbers for tanh)."))
    lines.append("")
    return lines


# --------------------------------------------------------------------------- he2015

@styled
def fig_he2015(scalars, runs):
    title = "He et al. 2015: deep ReLU network, Xavier vs He initialization"
    if runs.empty:
        return no_data_figure(title, "no runs")
    fig, axes = new_figure(1, 2, extra_width=0.4)
    colors = figures.ordered_colors(sorted(runs["init"].unique()))
    for _, run in runs.iterrows():
        for ax, name in zip(axes[0], (record.LOSS_TRAIN, record.ACC_VAL)):
            steps, values = _curve(scalars, run["run_id"], name)
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
    lines += _figure_lines("he2015_curves", "Xavier vs He", "Training loss and validation accuracy of a deep ReLU "
                           "network from Xavier and He initialization.", figure_dir)
    for _, run in runs.sort_values("init").iterrows():
        steps, loss = _curve(scalars, run["run_id"], record.LOSS_TRAIN)
        _, acc = _curve(scalars, run["run_id"], record.ACC_VAL)
        if loss.size < 2:
            continue
        change = (loss[-1] - loss[0]) / loss[0]
        verdict = "stalls" if abs(change) < 0.05 else "learns"
        lines.append(f"- {run['init']}: loss {loss[0]:.3f} -> {loss[-1]:.3f} ({100 * change:+.1f}%) over "
                     f"{int(steps[-1])} steps, final validation accuracy {acc[-1]:.3f}: it {verdict}.")
    lines.append("")
    return lines


# --------------------------------------------------------------------------- phase diagram

def phase_table(runs):
    """Final val accuracy over (sigma_w^2, depth), one cell per configuration (mean over seeds)."""
    table = runs.assign(sigma_w2=np.round(runs["sigma_w"] ** 2, 3))
    return table.pivot_table(index="depth", columns="sigma_w2", values="acc/val", aggfunc="mean").sort_index()


def six_xi(sigma_w2_values, sigma_b2):
    """6 |xi|: xi = -1/ln chi(q*) is negative on the chaotic side, where gradients explode."""
    return np.array([6 * abs(mf.depth_scale("tanh", s, sigma_b2)) for s in sigma_w2_values])


@styled
def fig_phase_diagram(runs, sigma_b2):
    title = f"Trainability of tanh networks, sigma_b^2 = {sigma_b2:.3g}"
    if runs.empty or runs["sigma_w"].isna().all():
        return no_data_figure(title, "no runs with init.sigma_w")
    grid = phase_table(runs)
    fig, axes = new_figure(1, 1, extra_width=1.0)
    ax = axes[0, 0]
    sw2, depths = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    mesh = ax.pcolormesh(cell_edges(sw2), cell_edges(depths), grid.to_numpy(float), cmap="viridis",
                         norm=Normalize(0, 1), shading="flat")
    fig.colorbar(mesh, ax=ax, label="final val accuracy")
    fine = np.linspace(sw2.min(), sw2.max(), 200)
    curve = six_xi(fine, sigma_b2)
    ax.plot(fine, np.clip(curve, 0, depths.max() * 1.5), color="white", linestyle="--", label="6 |xi| (mean field)")
    ax.set(xlabel="sigma_w^2", ylabel="depth (hidden layers)", ylim=(cell_edges(depths)[0], cell_edges(depths)[-1]))
    ax.legend(loc="upper right", fontsize=7)
    suptitle(fig, title)
    return fig


def phase_diagram(frames, figure_dir):
    runs = frames.runs
    sigma_b2 = float(np.nanmedian(runs["sigma_b"] ** 2)) if runs["sigma_b"].notna().any() else 0.05
    save_figure(fig_phase_diagram(runs, sigma_b2), figure_dir, "phase_diagram")
    lines = ["## Schoenholz et al. 2017: the trainability phase diagram", ""]
    lines += _figure_lines("phase_diagram", "Phase diagram", "Final validation accuracy of tanh networks over "
                           "sigma_w^2 and depth, with the mean-field 6 |xi| curve (dashed), xi = -1/ln chi(q*) the "
                           "depth scale of the gradients (vanishing below the transition, exploding above): networks "
                           "deeper than about 6 |xi| should not train.", figure_dir)
    if runs["sigma_w"].isna().all():
        return lines
    grid = phase_table(runs)
    classes = runs["n_out"].dropna().unique()
    if len(classes) != 1:
        lines += ["- No trainability threshold: chance accuracy needs one number of classes (the runs' n_out "
                  f"tags give {len(classes)}).", ""]
        return lines
    chance = 1.0 / float(classes[0])  # uniform guessing among the network's output classes
    threshold = chance + 0.5 * (np.nanmax(grid.to_numpy()) - chance)
    inside, outside = [], []
    for depth in grid.index:
        for s, acc in grid.loc[depth].items():
            if np.isfinite(acc):
                (inside if depth <= six_xi([s], sigma_b2)[0] else outside).append(acc >= threshold)
    critical = mf.critical_sigma_w2("tanh", sigma_b2)
    lines.append(f"- Mean field puts the order-to-chaos transition at sigma_w^2 = {critical:.3f}, where xi diverges.")
    best_col = grid.columns[np.nanargmax(np.nanmean(grid.to_numpy(), axis=0))]
    lines.append(f"- Highest mean accuracy over depths at sigma_w^2 = {best_col:g}; the deepest trainable network "
                 f"(val accuracy >= {threshold:.2f}, halfway from chance to the best) has depth "
                 f"{_deepest_trainable(grid, threshold)}.")
    if inside and outside:
        lines.append(f"- Trainable: {np.mean(inside):.0%} of {len(inside)} cells with depth <= 6 |xi| and "
                     f"{np.mean(outside):.0%} of {len(outside)} cells beyond it.")
    lines.append("")
    return lines


def _deepest_trainable(grid, threshold):
    ok = grid[(grid >= threshold).any(axis=1)]
    return int(ok.index.max()) if not ok.empty else "none"


# --------------------------------------------------------------------------- symmetry

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
    lines += _figure_lines("symmetry", "Symmetry", "unit_spread (max over a layer's units of the distance of "
                           "their incoming weights from unit 1's, relative to their RMS norm) of the hidden layers "
                           "during training: 0 means every unit of the layer is the same unit.", figure_dir)
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


SECTIONS = {"glorot2010": glorot2010, "he2015": he2015, "phase_diagram": phase_diagram, "symmetry": symmetry,
            "remedies": remedies, "rnn_init": rnn_init, "adding": adding, "clipping": clipping,
            "isometry": isometry}


def study_section(study, frames, figure_dir):
    """The markdown lines of ``study``'s own section ([] for other studies or no runs)."""
    if study not in SECTIONS or frames.runs.empty:
        return []
    return SECTIONS[study](frames, figure_dir)
