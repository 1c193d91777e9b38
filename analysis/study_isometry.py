"""The isometry study's report section (``make study NAME=isometry``, conf/experiment/isometry.yaml):
the spectrum of the input-output Jacobian J = d a_(L-1)/dx at initialization against free
probability (``nncore.theory_spectrum``), and whether orthogonal tanh networks train faster than
Gaussian ones at chi = 1.

Measured: the Jacobian probe of each run at step 0 (``nncore.probes.jacobian_probe``: the
squared singular values of J for the first JACOBIAN_INPUTS probe rows, pooled; metrics
``jacobian/sv2_mean`` and ``jacobian/sv2_var``, histogram kind ``jacobian_log10_sv2``). Predicted:
``theory_spectrum.predict`` at each layer's q^l, from the inputs' mean square inferred from layer 1's
measured pre-activation variance (as ``analysis.theory`` does); no line where it returns None.

    lines = isometry(frames, figure_dir)   # markdown lines; figures in figure_dir
"""
import math

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from experiments import record
from nncore import theory as mf
from nncore import theory_spectrum as ts

from . import figures
from .figures import mark_empty, new_figure, no_data_figure, save_figure, styled, suptitle
from .theory import activation_of

SV2_MEAN, SV2_VAR = record.JACOBIAN_SCALARS["sv2_mean"], record.JACOBIAN_SCALARS["sv2_var"]
WEIGHTS = {"normal": "Gaussian", "orthogonal": "orthogonal"}  # the study's inits, as the paper names them


def _sigma2(run, key):
    value = run.get(key)
    return float(value) ** 2 if value is not None and np.isfinite(value) else 0.0


def network_label(run):
    """'linear', 'relu', 'tanh q*=0.107': the network the run stands for (activation and fixed point)."""
    name = run["activation"]
    if name == "identity":
        return "linear"
    if name != "tanh":
        return name
    key = "gain" if run["init"] == "orthogonal" else "sigma_w"
    try:
        q_star = mf.fixed_point("tanh", _sigma2(run, key), _sigma2(run, "sigma_b"))
    except (ValueError, ArithmeticError):
        return "tanh"
    return f"tanh q*={q_star:.3g}"


def _init_params(run):
    return {key: float(run[key]) for key in ("sigma_w", "gain") if np.isfinite(run.get(key, np.nan))}


def predicted(run, q1):
    """theory_spectrum.predict for one run ({sv2_mean, sv2_var}), or None where it does not apply."""
    n_in = int(run["n_in"]) if np.isfinite(run.get("n_in", np.nan)) else 64
    n_out = int(run["n_out"]) if np.isfinite(run.get("n_out", np.nan)) else 10
    sizes = [n_in] + [int(run["width"])] * int(run["depth"]) + [n_out]
    params = _init_params(run)
    sigma_b2 = _sigma2(run, "sigma_b")
    try:
        sw2 = mf.sigma_w2(run["init"], sizes[0], sizes[1], **params)
        input_ms = max((q1 - sigma_b2) / sw2, 0.0) if sw2 > 0 else 0.0
        norm = run.get("norm", "none")
        residual = np.isfinite(run.get("residual_scale", np.nan))
        return ts.predict(sizes, activation_of(run), run["init"], input_ms, sigma_b2=sigma_b2, init_params=params,
                          norm=norm, residual=residual)
    except (ValueError, ArithmeticError):
        return None


def spectrum_table(frames):
    """One row per run: network, init, depth, seed, measured and predicted sv2 mean and variance at step 0."""
    runs, scalars, stats = frames.runs, frames.scalars, frames.layer_stats
    at0 = scalars[(scalars["step"] == 0) & scalars["name"].isin([SV2_MEAN, SV2_VAR])]
    measured = at0.pivot_table(index="run_id", columns="name", values="value", aggfunc="first")
    q1 = stats[(stats["step"] == 0) & (stats["layer"] == 1) & (stats["stat"] == "preact_var")]
    q1 = q1.drop_duplicates("run_id").set_index("run_id")["value"]
    rows = []
    for _, run in runs.iterrows():
        if run["run_id"] not in measured.index:
            continue
        pred = predicted(run, float(q1.get(run["run_id"], np.nan))) if run["run_id"] in q1.index else None
        rows.append({"run_id": run["run_id"], "network": network_label(run), "init": run["init"],
                     "depth": int(run["depth"]), "width": int(run["width"]), "seed": run["seed"],
                     "sv2_mean": measured.loc[run["run_id"]].get(SV2_MEAN, np.nan),
                     "sv2_var": measured.loc[run["run_id"]].get(SV2_VAR, np.nan),
                     "pred_mean": pred["sv2_mean"] if pred else np.nan,
                     "pred_var": pred["sv2_var"] if pred else np.nan})
    return pd.DataFrame(rows, columns=["run_id", "network", "init", "depth", "width", "seed", "sv2_mean",
                                       "sv2_var", "pred_mean", "pred_var"])


def _network_order(table):
    order = {"linear": 0, "relu": 3}
    return sorted(table["network"].unique(), key=lambda n: (order.get(n, 1), n))


def _spectrum_depth(table):
    """The depth whose spectra are drawn: the deepest with L/n <= 1/8 (finite-width corrections
    small), else the shallowest."""
    ok = table[table["depth"] <= table["width"] / 8]
    return int(ok["depth"].max()) if not ok.empty else int(table["depth"].min())


def _cdf(hist):
    """(right edges in lambda, cumulative fraction) of one log10-lambda histogram; empty when it counts nothing."""
    hist = hist.sort_values("bin")
    counts = hist["count"].to_numpy(np.float64)
    if counts.sum() <= 0:
        return np.array([]), np.array([])
    return 10.0 ** hist["right"].to_numpy(np.float64), np.cumsum(counts) / counts.sum()


@styled
def fig_spectra(histograms, table):
    title = "Spectrum of J J^T at initialization (squared singular values of the input-output Jacobian)"
    if table.empty:
        return no_data_figure(title, "no run with a Jacobian probe")
    depth = _spectrum_depth(table)
    nets = _network_order(table)
    colors = figures.ordered_colors(list(WEIGHTS))
    fig, axes = new_figure(1, len(nets), sharey=True, extra_width=1.2)
    hists = histograms[(histograms["kind"] == record.JACOBIAN_HISTOGRAM) & (histograms["step"] == 0)]
    for ax, net in zip(axes[0], nets):
        rows = table[(table["network"] == net) & (table["depth"] == depth)]
        drawn = 0
        for _, row in rows.iterrows():
            edges, cdf = _cdf(hists[hists["run_id"] == row["run_id"]])
            keep = edges > 0
            if keep.any():
                ax.step(edges[keep], cdf[keep], where="post", color=colors.get(row["init"], "0.5"), alpha=0.8,
                        linewidth=1.0)
                drawn += 1
        for init, group in rows.groupby("init"):
            pred = group[["pred_mean", "pred_var"]].mean()
            if np.isfinite(pred["pred_mean"]) and pred["pred_mean"] > 0:
                ax.axvline(pred["pred_mean"], color=colors.get(init, "0.5"), linestyle="--", linewidth=1.0)
        if not drawn:
            mark_empty(ax)
        ax.set(title=f"{net}, depth {depth}", xlabel=r"squared singular value $\lambda$", xscale="log",
               ylim=(0, 1.02))
    axes[0, 0].set_ylabel(r"fraction of $\lambda$ below")
    handles = [figures.Line2D([], [], color=colors[i], label=WEIGHTS[i]) for i in WEIGHTS]
    handles.append(figures.Line2D([], [], color="0.3", linestyle="--", label="theory: mean of lambda"))
    axes[0, -1].legend(handles=handles, fontsize=7)
    suptitle(fig, f"{title}: cumulative distribution, one line per seed; width {int(table['width'].max())}")
    return fig


def _log2_ticks(ax, values, labels):
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, labels)
    ax.xaxis.set_minor_locator(NullLocator())


@styled
def fig_variance_vs_depth(table):
    title = "Variance sigma^2 of the spectrum of J J^T against depth"
    if table.empty:
        return no_data_figure(title, "no run with a Jacobian probe")
    nets = _network_order(table)
    colors = figures.ordered_colors(list(WEIGHTS))
    fig, axes = new_figure(2, len(nets), extra_width=1.2)
    for col, net in enumerate(nets):
        top, bottom = axes[0, col], axes[1, col]
        for init, group in table[table["network"] == net].groupby("init"):
            color = colors.get(init, "0.5")
            top.scatter(group["depth"], group["sv2_var"], color=color, s=12, alpha=0.7)
            by_depth = group.groupby("depth")[["sv2_var", "pred_var"]].mean()
            top.plot(by_depth.index, by_depth["sv2_var"], color=color, linewidth=1.0, label=f"{WEIGHTS.get(init, init)} measured")
            if by_depth["pred_var"].notna().any():
                top.plot(by_depth.index, by_depth["pred_var"], color=color, linestyle="--", linewidth=1.2,
                         label=f"{WEIGHTS.get(init, init)} theory")
                ok = by_depth["pred_var"] > 1e-9
                if ok.any():
                    bottom.plot(by_depth.index[ok] / group["width"].iloc[0],
                                by_depth["sv2_var"][ok] / by_depth["pred_var"][ok],
                                color=color, marker="o", markersize=3)
        depths = np.sort(table["depth"].unique())
        width = int(table["width"].iloc[0])
        _log2_ticks(top, depths, [str(d) for d in depths])
        _log2_ticks(bottom, depths / width, [f"{d}/{width}" for d in depths])
        top.set(title=net, xlabel="depth L")
        bottom.axhline(1.0, color="0.5", linewidth=0.8)
        bottom.set(xlabel="L / n (depth over width)")
    axes[0, 0].set_ylabel(r"$\sigma^2$ (seeds: dots)")
    axes[1, 0].set_ylabel(r"measured / predicted $\sigma^2$")
    axes[0, -1].legend(fontsize=7)
    suptitle(fig, f"{title}: measured (solid, mean over seeds) and free-probability theory (dashed); bottom: the "
                  f"finite-width departure against L/n")
    return fig


@styled
def fig_training(scalars, runs, table):
    title = "Training at chi = 1: tanh, Gaussian vs orthogonal weights"
    tanh = table[table["network"].str.startswith("tanh")]
    if tanh.empty:
        return no_data_figure(title, "no tanh runs")
    depth = int(tanh["depth"].max())
    nets = _network_order(tanh)
    colors = figures.ordered_colors(list(WEIGHTS))
    fig, axes = new_figure(1, len(nets), sharey=True, extra_width=1.2)
    loss = scalars[scalars["name"] == record.LOSS_TRAIN]
    for ax, net in zip(axes[0], nets):
        for _, row in tanh[(tanh["network"] == net) & (tanh["depth"] == depth)].iterrows():
            curve = loss[loss["run_id"] == row["run_id"]].sort_values("step")
            ax.plot(curve["step"], curve["value"], color=colors.get(row["init"], "0.5"), alpha=0.8,
                    label=WEIGHTS.get(row["init"], row["init"]))
        ax.set(title=f"{net}, depth {depth}", xlabel="step")
    axes[0, 0].set_ylabel("loss/train (probe batch)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[0, -1].legend(unique.values(), unique.keys(), fontsize=7)
    lr = runs["lr"].dropna()
    suptitle(fig, f"{title} (SGD, lr {lr.iloc[0]:g}; one line per seed)" if not lr.empty else title)
    return fig


def _final_losses(scalars, run_ids):
    loss = scalars[(scalars["name"] == record.LOSS_TRAIN) & scalars["run_id"].isin(run_ids)]
    last = loss.sort_values("step").groupby("run_id").tail(1)
    return last.set_index("run_id")["value"]


def trainability_sentences(scalars, table):
    """What the tanh runs say: the final training loss of orthogonal vs Gaussian weights, matched by
    network, depth and seed."""
    tanh = table[table["network"].str.startswith("tanh")]
    if tanh.empty:
        return []
    final = _final_losses(scalars, tanh["run_id"])
    t = tanh.assign(final=tanh["run_id"].map(final))
    pairs = t.pivot_table(index=["network", "depth", "seed"], columns="init", values="final", aggfunc="first")
    if not {"normal", "orthogonal"} <= set(pairs.columns):
        return ["- No trainability comparison: the tanh runs lack Gaussian or orthogonal weights."]
    pairs = pairs.dropna(subset=["normal", "orthogonal"])
    if pairs.empty:
        return []
    wins = int((pairs["orthogonal"] < pairs["normal"]).sum())
    lines = [f"- Orthogonal tanh ended with a lower training loss than Gaussian tanh in {wins} of {len(pairs)} "
             f"matched (network, depth, seed) pairs."]
    by = pairs.groupby(level=["network", "depth"]).mean()
    deepest = by.index.get_level_values("depth").max()
    for net in sorted(by.index.get_level_values("network").unique()):
        row = by.loc[(net, deepest)] if (net, deepest) in by.index else None
        if row is None:
            continue
        faster = "orthogonal" if row["orthogonal"] < row["normal"] else "Gaussian"
        lines.append(f"- {net}, depth {deepest}: final training loss {row['normal']:.3f} (Gaussian) vs "
                     f"{row['orthogonal']:.3f} (orthogonal), mean over seeds: the {faster} network trained further "
                     f"in the same steps.")
    shallow = by.index.get_level_values("depth").min()
    gaps = by.groupby(level="depth").apply(lambda g: float((g["normal"] - g["orthogonal"]).mean()))
    lines.append(f"- The Gaussian-minus-orthogonal loss gap (mean over tanh networks and seeds) is {gaps.loc[shallow]:+.3f} "
                 f"at depth {shallow} and {gaps.loc[deepest]:+.3f} at depth {deepest}"
                 + (": it grows with depth, as the spectra's widening predicts." if gaps.loc[deepest] > gaps.loc[shallow]
                    else ": it does not grow with depth here."))
    return lines


def variance_table(table):
    """Markdown rows: measured (mean over seeds, range) vs predicted sigma^2 per network, init and depth."""
    lines = ["| network | weights | depth | L/n | sigma^2 measured (mean; min-max over seeds) | predicted | "
             "mean lambda measured | predicted |", "|---|---|---|---|---|---|---|---|"]
    for net in _network_order(table):
        for init in WEIGHTS:
            group = table[(table["network"] == net) & (table["init"] == init)]
            for depth, g in group.groupby("depth"):
                pred = g["pred_var"].mean()
                lines.append(f"| {net} | {WEIGHTS[init]} | {depth} | {depth / g['width'].iloc[0]:.3g} | "
                             f"{g['sv2_var'].mean():.3g} ({g['sv2_var'].min():.3g}-{g['sv2_var'].max():.3g}) | "
                             f"{'n/a' if not np.isfinite(pred) else f'{pred:.3g}'} | {g['sv2_mean'].mean():.3g} | "
                             f"{'n/a' if not np.isfinite(g['pred_mean'].mean()) else f'{g.pred_mean.mean():.3g}'} |")
    return lines


def departure_sentences(table):
    ok = table[np.isfinite(table["pred_var"]) & (table["pred_var"] > 1e-9)]
    if ok.empty:
        return []
    by = ok.groupby("depth").apply(lambda g: float(np.median(g["sv2_var"] / g["pred_var"])))
    width = int(ok["width"].iloc[0])
    return [f"- Measured over predicted sigma^2 (median over networks, inits and seeds with a non-zero prediction): "
            + ", ".join(f"{by.loc[d]:.2f} at depth {d} (L/n = {d / width:.2g})" for d in by.index)
            + ". Free probability is an infinite-width result; its corrections grow like L/n."]


def fixed_point_sentences(frames, table):
    """Where the tanh networks' pre-activations sit: layer 1's measured q against q* (the theory is stated
    at q*; the prediction here follows each layer's q^l from the inputs)."""
    stats = frames.layer_stats
    q = stats[(stats["step"] == 0) & (stats["stat"] == "preact_var")]
    lines = []
    for net in _network_order(table):
        if not net.startswith("tanh q*="):
            continue
        ids = table[table["network"] == net]
        deepest = ids[ids["depth"] == ids["depth"].max()]
        q1 = q[q["run_id"].isin(ids["run_id"]) & (q["layer"] == 1)]["value"].median()
        top = q[q["run_id"].isin(deepest["run_id"]) & (q["layer"] == int(deepest["depth"].iloc[0]))]["value"].median()
        lines.append(f"- {net}: the inputs put layer 1's pre-activations at q = {q1:.3g} (median over runs) and the "
                     f"deepest networks' last hidden layer at {top:.3g}; at criticality the length map approaches q* "
                     f"only slowly, so the theory is evaluated at each layer's q^l (from the inputs' mean square), "
                     f"where the predicted mean of lambda is the product of the layers' chi.")
    return lines + ([""] if lines else [])


def isometry(frames, figure_dir):
    table = spectrum_table(frames)
    lines = ["## Dynamical isometry: Jacobian spectra at initialization", ""]
    save_figure(fig_spectra(frames.histograms, table), figure_dir, "isometry_spectra")
    lines += [f"![Spectra](figures/isometry_spectra.png)", "",
              "*Cumulative distribution of the squared singular values of J = d a_(L-1)/dx at initialization "
              "(Jacobian probe: 4 probe inputs pooled, one line per seed; from the stored histogram, so to within "
              "a bin), Gaussian vs orthogonal weights at criticality; dashed: the free-probability mean "
              "(Pennington, Schoenholz & Ganguli 2017/2018; nncore.theory_spectrum). Dynamical isometry is a step "
              "at 1.* ([SVG](figures/isometry_spectra.svg))", ""]
    save_figure(fig_variance_vs_depth(table), figure_dir, "isometry_variance")
    lines += ["![Variance vs depth](figures/isometry_variance.png)", "",
              "*Variance of the spectrum against depth: measured (dots: seeds; solid: their mean) and predicted "
              "(dashed; sigma^2 = L (mu2/mu1^2 - 1 - s1) at criticality and q*, here at each layer's q^l); "
              "bottom: measured / predicted against L/n, the finite-width departure.* "
              "([SVG](figures/isometry_variance.svg))", ""]
    if table.empty:
        return lines
    lines += variance_table(table) + [""]
    lines += fixed_point_sentences(frames, table)
    lines += departure_sentences(table)
    lines.append("")
    save_figure(fig_training(frames.scalars, frames.runs, table), figure_dir, "isometry_training")
    lines += ["![Training](figures/isometry_training.png)", "",
              "*Training loss (probe batch) of the deepest tanh networks at chi = 1, Gaussian vs orthogonal "
              "weights.* ([SVG](figures/isometry_training.svg))", ""]
    lines += trainability_sentences(frames.scalars, table) + [""]
    return lines
