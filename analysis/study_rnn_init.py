"""Study rnn_init (conf/experiment/rnn_init.yaml): the back-propagated error's RMS against time step
at initialization, T = 100, for Elman RNNs from ordered to chaotic and the gated cells, with the
mean-field prediction (nncore.theory_recurrent) dashed where the literature has one, and the measured
per-step ratio against the predicted sqrt(chi) in a table.

Both ratios come from the same fit (analysis.recurrent.per_step_ratio: the slope of ln delta_ms over
the second half of the steps), applied to the measured profile and to the predicted one.
"""
import numpy as np

from . import recurrent
from .figures import new_figure, no_data_figure, ordered_colors, save_figure, styled, suptitle

FIGURE = "rnn_init_delta_ms"
PANELS = (("Elman tanh, W ~ N(0, sigma_w^2 / n)", lambda r: r["cell"] == "rnn" and r["init"] == "normal"
           and r["activation"] == "tanh" and r["recurrent_init"] == "same"),
          ("other Elman RNNs", lambda r: r["cell"] == "rnn"),
          ("gated cells (no mean-field line)", lambda r: r["cell"] in ("lstm", "gru")))


def panel_of(run):
    """The index of the first panel whose rule takes the run."""
    return next(i for i, (_, rule) in enumerate(PANELS) if rule(run))


def ratio_table(frames):
    """[(net, T, measured ratio, predicted ratio or NaN, reason or "")] in the runs' order."""
    rows = []
    for _, run in recurrent.label_runs(frames.runs).iterrows():
        t, delta = recurrent.time_profile(frames.layer_stats, run["run_id"], "delta_ms")
        measured = recurrent.per_step_ratio(t, delta)
        prediction = recurrent.theory(run)
        if isinstance(prediction, str):
            rows.append((run["net"], run, measured, np.nan, prediction))
        else:
            rows.append((run["net"], run, measured, recurrent.per_step_ratio(np.arange(1, prediction.size + 1),
                                                                            prediction), ""))
    return rows


def _sort_key(row):
    run = row[1]
    return (panel_of(run), run.get("sigma_w", 0.0) if run["init"] == "normal" else 0.0, row[0])


@styled
def fig_rnn_init(frames, rows):
    title = "Back-propagated error through time at initialization, T = 100"
    if not rows:
        return no_data_figure(title, "no recurrent runs")
    fig, axes = new_figure(1, len(PANELS), sharey=True, extra_width=0.6)
    # one palette per panel: few lines each, told apart
    colors = {}
    for index in range(len(PANELS)):
        colors.update(ordered_colors([row[0] for row in rows if panel_of(row[1]) == index]))
    for ax, (name, _) in zip(axes[0], PANELS):
        ax.set(yscale="log", xlabel="time step t", title=name)
    for net, run, _, _, _ in rows:
        ax = axes[0, panel_of(run)]
        t, delta = recurrent.time_profile(frames.layer_stats, run["run_id"], "delta_ms")
        if not t.size or not (np.isfinite(delta[-1]) and delta[-1] > 0):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.where(delta > 0, delta / delta[-1], np.nan)
        ax.plot(t, shown, color=colors[net], label=net, linewidth=1.2)
        prediction = recurrent.theory(run)
        if not isinstance(prediction, str):
            ax.plot(np.arange(1, prediction.size + 1), prediction, color=colors[net], linestyle="--", linewidth=1)
    axes[0, 0].set_ylabel("delta_ms(t) / delta_ms(T)")
    for ax in axes[0]:
        if ax.lines:
            ax.legend(fontsize=6, loc="lower right")
    suptitle(fig, f"{title}: measured (solid), mean field (dashed)")
    return fig


def rnn_init(frames, figure_dir):
    """The study's markdown lines."""
    _, frames = recurrent.split(frames)
    lines = ["## Gradients through time at initialization (rnn_init)", ""]
    rows = sorted(ratio_table(frames), key=_sort_key)
    save_figure(fig_rnn_init(frames, rows), figure_dir, FIGURE)
    width = sorted({int(w) for w in frames.runs["width"].dropna()})
    lines += [f"![rnn_init](figures/{FIGURE}.png)", "",
              "*Mean square of the per-example error dL/dh_t against time step t at initialization, relative to the "
              f"last step T, one probe of {', '.join(map(str, width))} hidden units on adding-problem sequences. "
              "Dashed: the mean-field prediction (nncore.theory_recurrent: q_t = sigma_w^2 E[phi^2] + sigma_u^2 "
              "E[x^2] + sigma_b^2, chi_t = sigma_w^2 E[phi'^2], the untied-weight approximation; Chen, Pennington "
              "& Schoenholz 2018, Yang 2019). None for the IRNN (W_hh = I is not random), the LSTM and the GRU "
              f"(the literature gives no per-step profile).* ([SVG](figures/{FIGURE}.svg))", "",
              "Per-step ratio of the error's RMS back in time (exp(-slope/2) of ln delta_ms over the second half of "
              "the steps), measured and predicted by the same fit:", "",
              "| network | measured ratio | mean field sqrt(chi) | relative error |", "|---|---|---|---|"]
    for net, _, measured, predicted, reason in rows:
        error = abs(measured - predicted) / predicted if np.isfinite(predicted) and predicted > 0 else np.nan
        lines.append(f"| {net} | {measured:.3f} | " + (f"{predicted:.3f}" if np.isfinite(predicted) else "—")
                     + " | " + (f"{error:.1%}" if np.isfinite(error) else "—") + " |")
    lines.append("")
    lines += [f"- {sentence}" for sentence in observations(rows)] + [""]
    return lines


def observations(rows):
    """Sentences computed from the table's rows."""
    out = []
    compared = [(net, m, p) for net, _, m, p, _ in rows if np.isfinite(m) and np.isfinite(p) and p > 0]
    if compared:
        worst = max(compared, key=lambda x: abs(x[1] - x[2]) / x[2])
        out.append(f"Mean field against measurement for {len(compared)} Elman RNNs: the largest relative error is "
                   f"{abs(worst[1] - worst[2]) / worst[2]:.1%} ({worst[0]}: {worst[1]:.3f} measured, {worst[2]:.3f} "
                   "predicted).")
    series = sorted([(run["sigma_w"], m) for _, run, m, _, _ in rows if panel_of(run) == 0 and np.isfinite(m)])
    if len(series) >= 2:
        below = [s for s, m in series if m < 1]
        above = [s for s, m in series if m > 1]
        if below and above and max(below) < min(above):
            out.append(f"The tanh RNN's error vanishes back in time (ratio below 1) up to sigma_w = {max(below):g} and "
                       f"explodes from sigma_w = {min(above):g}: the order-to-chaos transition lies between them.")
        else:
            out.append("Over sigma_w " + ", ".join(f"{s:g}: {m:.3f}" for s, m in series) + ".")
    gated = [(net, m) for net, run, m, _, _ in rows if run["cell"] in ("lstm", "gru") and np.isfinite(m)]
    if gated:
        out.append("Gated cells: " + "; ".join(f"{net} {m:.3f} per step ({m ** 99:.2g} over 99 steps)"
                                              for net, m in gated) + ".")
    for net, _, m, _, reason in rows:
        if net == "IRNN" and np.isfinite(m):
            out.append(f"IRNN: {m:.3f} per step; {reason}.")
    return out
