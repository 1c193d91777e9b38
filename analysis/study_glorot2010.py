"""Study glorot2010 (conf/experiment/glorot2010.yaml; Glorot & Bengio 2010): Fig. 2's sigmoid
saturation during training with its numbers, Figs. 6-8's histograms and shrink ratios at
initialization, and section 4.2's average singular value of each layer's Jacobian against the
paper's 0.5 and 0.8.
"""
import math

import numpy as np
import pandas as pd

from experiments import record

from .figures import save_figure
from .sections import histograms, saturation
from .sections.section import figure_lines


def _init_stat(layer_stats, run_id, stat, step=0):
    rows = layer_stats[(layer_stats["run_id"] == run_id) & (layer_stats["stat"] == stat)
                       & (layer_stats["step"] == step)]
    return rows.sort_values("layer")["value"].to_numpy()


def _pick(runs, **where):
    rows = runs
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return None if rows.empty else rows.iloc[0]


def glorot2010(frames, figure_dir):
    runs, stats = frames.runs, frames.layer_stats
    lines = ["## Glorot & Bengio 2010", ""]
    sig = _pick(runs, activation="sigmoid", init="uniform")
    if sig is not None:
        save_figure(saturation.fig_saturation(stats, runs, run_id=sig["run_id"]), figure_dir, "glorot_fig2_saturation")
        depth = int(sig["depth"])
        top = stats[(stats["run_id"] == sig["run_id"]) & (stats["layer"] == depth)]
        mean = top[top["stat"] == "act_mean"].sort_values("step")
        lines += figure_lines("glorot_fig2_saturation", "Sigmoid activations during training",
                              f"Glorot & Bengio Fig. 2: mean and spread of each hidden layer's sigmoid output during "
                              f"training (sigmoid + uniform, depth {depth}, width {int(sig['width'])}).")
        if not mean.empty:
            lines += fig2_sentences(stats, sig["run_id"], depth)
        lines.append("")
    act_for_hist = "tanh" if (runs["activation"] == "tanh").any() else runs["activation"].iloc[0]
    save_figure(histograms.fig_histograms(frames.histograms, runs, activation=act_for_hist,
                                          inits=("uniform", "xavier_uniform")), figure_dir, "glorot_fig6_7_histograms")
    lines += figure_lines("glorot_fig6_7_histograms", "Histograms at initialization",
                          f"Glorot & Bengio Figs. 6-7: activations and back-propagated errors of each hidden layer at "
                          f"initialization ({act_for_hist}), standard (uniform) vs normalized (xavier_uniform) init.")
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
