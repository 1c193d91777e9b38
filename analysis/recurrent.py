"""Recurrent runs in the report: their selection, their statistics against time step, the mean-field
prediction beside them, and the report's recurrent section (figures with time on the x axis, and
the at-a-glance lines).

A recurrent run's layer_stats rows carry layer = k * 100000 + t (experiments.record): stacked
layer k, time step t. Its verdicts (pathology through time, trainability) are the job's tags
(experiments.diagnose_time); the report reads them and does not redo them.

    mlp, rec = split(frames)                 # the MLP runs' frames, the recurrent runs' frames
    t, values = time_profile(rec.layer_stats, run_id, "delta_ms")   # top layer, step 0
    ratio = per_step_ratio(t, values)        # the error's RMS ratio per step back in time
"""
from dataclasses import replace

import numpy as np
import pandas as pd

from experiments import datasets, record
from nncore import theory_recurrent
from nncore.probes_recurrent import layer_and_time

from .figures import new_figure, no_data_figure, ordered_colors, save_figure, styled, suptitle

FIGURE = "recurrent_delta_ms"


def is_recurrent(runs):
    """Boolean mask of the recurrent runs (tag cell rnn, lstm or gru)."""
    if "cell" not in runs:
        return pd.Series(False, index=runs.index)
    return ~runs["cell"].fillna("none").isin(("none", ""))


def _subset(frames, runs):
    ids = set(runs["run_id"])
    keep = {name: getattr(frames, name) for name in ("layer_stats", "histograms", "scalars")}
    return replace(frames, runs=runs, **{name: table[table["run_id"].isin(ids)] for name, table in keep.items()})


def split(frames):
    """(the frames of the MLP runs, the frames of the recurrent runs); both carry their job's verdicts
    (the tags of experiments.record.VERDICT_TAGS, read by analysis.load)."""
    mask = is_recurrent(frames.runs)
    return _subset(frames, frames.runs[~mask]), _subset(frames, frames.runs[mask])


def time_profile(layer_stats, run_id, stat, step=0, layer=None):
    """(t = 1..T, values) of ``stat`` of stacked layer ``layer`` (default: the top) at training step
    ``step`` (None: the run's last probe) of a recurrent run; empty arrays when absent."""
    rows = layer_stats[(layer_stats["run_id"] == run_id) & (layer_stats["stat"] == stat)]
    if step is None and len(rows):
        step = rows["step"].max()
    rows = rows[rows["step"] == step]
    if rows.empty:
        return np.array([], dtype=np.int64), np.array([])
    k, t = layer_and_time(rows["layer"].to_numpy(np.int64))
    chosen = k == (k.max() if layer is None else layer)
    order = np.argsort(t[chosen])
    return t[chosen][order], rows["value"].to_numpy(np.float64)[chosen][order]


def per_step_ratio(t, delta_ms):
    """The back-propagated error's RMS ratio per step back in time: exp(-slope / 2), slope the
    least-squares slope of ln delta_ms against t over the second half of the steps (past the
    forward transient from h_0 = 0, the stationary regime where the ratio is sqrt(chi(q*))); NaN
    with fewer than 3 positive finite values there."""
    t, delta_ms = np.asarray(t, dtype=np.float64), np.asarray(delta_ms, dtype=np.float64)
    if t.size == 0:
        return np.nan
    keep = (t >= t.max() / 2) & np.isfinite(delta_ms) & (delta_ms > 0)
    if keep.sum() < 3:
        return np.nan
    slope = np.polyfit(t[keep], np.log(delta_ms[keep]), 1)[0]
    return float(np.exp(-slope / 2))


def input_ms(run):
    """Mean square of the inputs (over examples, steps and features) for the mean field; None when
    the dataset's is not known in closed form."""
    if run.get("dataset") == "adding" and np.isfinite(run.get("seq_len", np.nan)):
        return datasets.adding_input_ms(int(run["seq_len"]))
    return None


def theory(run):
    """The mean-field prediction of a run's delta_ms relative to t = T (array over t = 1..T), or the
    reason there is none (a string)."""
    if run.get("cell") != "rnn":
        return theory_recurrent.REASONS.get(run.get("cell"), "no theory")
    if int(run.get("depth", 1)) != 1:
        return "no mean-field prediction for stacked layers here (the theory is that of one layer)"
    ms = input_ms(run)
    if ms is None:
        return f"no closed-form input mean square for data={run.get('dataset')}"
    same = run.get("recurrent_init") in ("same", "", None)
    # NaN when not logged: an initializer that reads it then says so, never a guessed 1.0
    init_params = {"sigma_w": run.get("sigma_w", np.nan), "gain": run.get("gain", np.nan)}
    gain = run.get("recurrent_gain")
    try:
        sw, su, sb = theory_recurrent.sigmas(
            int(run["n_in"]), int(run["width"]), init=run["init"], recurrent_init=None if same else run["recurrent_init"],
            init_params=init_params, recurrent_params=None if same else {
                **init_params, "gain": gain if gain is not None and np.isfinite(gain) else 1.0},
            sigma_b=run.get("sigma_b", 0.0) if np.isfinite(run.get("sigma_b", np.nan)) else 0.0)
        return theory_recurrent.predict("rnn", run["activation"], sw, su, sb, ms, int(run["seq_len"]))["delta_ms"]
    except ValueError as error:  # NoTheory, unsupported activations and parameters not logged say why
        return f"the run did not log an init parameter ({error})" if "got nan" in str(error) else str(error)


def net_label(run):
    """A short name of a recurrent net: "tanh, N(0, 1.5^2/n)", "IRNN", "LSTM fb=1", "GRU", ..."""
    cell = run.get("cell")
    if cell in ("lstm", "gru"):
        fb = run.get("forget_bias", 0.0)
        text = cell.upper() + (f" fb={fb:g}" if np.isfinite(fb) and (cell == "lstm" or fb) else "")
        return text + ("" if run.get("init") == "pytorch" else f" ({run.get('init')})")
    recurrent_init = run.get("recurrent_init") or "same"
    if recurrent_init == "identity" and run.get("activation") == "relu":
        return "IRNN"
    init = run.get("init")
    text = f"{run.get('activation')}, " + (f"sigma_w={run.get('sigma_w'):g}" if init == "normal" else init)
    if recurrent_init != "same":
        text += f", W_hh {recurrent_init}"
    return text


def label_runs(runs):
    """runs with a ``net`` column: each run's net_label."""
    labels = runs.apply(net_label, axis=1) if len(runs) else pd.Series(dtype="str")
    return runs.assign(net=labels)


# ------------------------------------------------------------------ the report's recurrent section

@styled
def fig_delta_ms(layer_stats, runs):
    """The error's mean square relative to t = T against t, at initialization and at the last probe."""
    title = "Back-propagated error through time (recurrent runs)"
    if runs.empty:
        return no_data_figure(title, "no recurrent runs")
    fig, axes = new_figure(1, 2, sharey=True, extra_width=2.6)
    colors = ordered_colors(list(dict.fromkeys(runs["net"])))
    for ax, step, when in ((axes[0, 0], 0, "at initialization"), (axes[0, 1], None, "at the last probe")):
        for _, run in runs.iterrows():
            t, delta = time_profile(layer_stats, run["run_id"], "delta_ms", step=step)
            if t.size and np.isfinite(delta[-1]) and delta[-1] > 0:
                ax.plot(t, delta / delta[-1], color=colors[run["net"]], label=run["net"], linewidth=1)
        ax.set(yscale="log", xlabel="time step t", title=when)
    axes[0, 0].set_ylabel("delta_ms(t) / delta_ms(T), top layer")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[0, 1].legend(unique.values(), unique.keys(), fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    suptitle(fig, title)
    return fig


def at_a_glance(frames):
    """Bullet points on the recurrent runs (none without them)."""
    runs = frames.runs
    if runs.empty:
        return []
    runs = label_runs(runs)
    verdicts = runs["trainability"].value_counts() if "trainability" in runs else pd.Series(dtype="int64")
    lines = [f"- Recurrent runs: {len(runs)} (cells {', '.join(sorted(runs['cell'].unique()))}; "
             f"T {', '.join(str(int(v)) for v in sorted(runs['seq_len'].dropna().unique()))}; "
             f"datasets {', '.join(sorted(runs['dataset'].unique()))}): "
             + ", ".join(f"{count} {name}" for name, count in verdicts.items()) + "."]
    for column, label in (("pathology_init", "at initialization"), ("pathology_final", "at the last probe")):
        if column in runs:
            counts = runs[column].value_counts()
            lines.append(f"- Diagnosis through time {label}: " + ", ".join(f"{c} {n}" for n, c in counts.items())
                         + " (runs; flags raised at any step, relative to the last step T).")
    ratios = [(run["net"], per_step_ratio(*time_profile(frames.layer_stats, run["run_id"], "delta_ms")))
              for _, run in runs.iterrows()]
    ratios = [(net, r) for net, r in ratios if np.isfinite(r)]
    if ratios:
        low, high = min(ratios, key=lambda x: x[1]), max(ratios, key=lambda x: x[1])
        lines.append(f"- The error's RMS per step back in time at initialization ranges from {low[1]:.3f} ({low[0]}) "
                     f"to {high[1]:.3f} ({high[0]}): below 1 it vanishes toward the first steps, above 1 it explodes.")
    if (runs["dataset"] == "adding").any():
        lines.append(f"- Adding problem: always predicting 1 scores MSE 1/6 = {datasets.ADDING_BASELINE_MSE:.3f}; a run "
                     "counts as trained below 0.01 (6% of that baseline; experiments.diagnose_time).")
    return lines


def summary(frames):
    """One row per recurrent run for summary.csv: its identity, verdicts and final numbers."""
    runs = label_runs(frames.runs)
    rows = []
    for _, run in runs.iterrows():
        t, delta = time_profile(frames.layer_stats, run["run_id"], "delta_ms")
        rows.append({"run_id": run["run_id"], "run_name": run["run_name"], "net": run["net"], "cell": run["cell"],
                     "seq_len": run["seq_len"], "dataset": run["dataset"], "optimizer": run["optimizer"],
                     "seed": run["seed"], "per_step_ratio_init": per_step_ratio(t, delta),
                     "loss_val": run.get(record.LOSS_VAL), "acc_val": run.get(record.ACC_VAL),
                     "trainability": run.get("trainability"), "pathology_init": run.get("pathology_init"),
                     "pathology_final": run.get("pathology_final"), "clipped_fraction": run.get("clipped_fraction")})
    return pd.DataFrame(rows)


def section(frames, figure_dir):
    """The markdown lines of the report's recurrent section ([] without recurrent runs)."""
    runs = frames.runs
    if runs.empty:
        return []
    runs = label_runs(runs)
    save_figure(fig_delta_ms(frames.layer_stats, runs), figure_dir, FIGURE)
    lines = ["## Recurrent networks: gradients through time", "",
             f"![Error through time](figures/{FIGURE}.png)", "",
             "*Mean square of the per-example back-propagated error dL/dh_t of the top recurrent layer against time "
             "step t, relative to the last step T (where the readout's error enters), at initialization and at each "
             f"run's last probe; one line per run.* ([SVG](figures/{FIGURE}.svg))", ""]
    for _, run in runs.sort_values(["cell", "seq_len", "net"]).iterrows():
        t, delta = time_profile(frames.layer_stats, run["run_id"], "delta_ms")
        ratio = per_step_ratio(t, delta)
        final = run.get(record.LOSS_VAL)
        lines.append(f"- {run['net']} (T = {int(run['seq_len']) if np.isfinite(run['seq_len']) else '?'}, "
                     f"{run['optimizer']}"
                     + (f", clip_norm {run['clip_norm']:g}" if np.isfinite(run.get("clip_norm", np.nan)) else "")
                     + f", seed {run['seed']}): per-step ratio at init "
                     + (f"{ratio:.3f}" if np.isfinite(ratio) else "n/a")
                     + f"; pathology through time at init {run.get('pathology_init')}, at the end "
                     f"{run.get('pathology_final')}; final loss/val {final:.4g}; {run.get('trainability')}.")
    return lines + [""]
