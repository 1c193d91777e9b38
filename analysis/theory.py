"""Mean-field predictions beside the measurements (nncore.theory), per run at initialization.

The prediction of a run starts from its measured layer-1 pre-activation variance
(q^1 = sigma_w^2 mean(x^2) + sigma_b^2 gives the input's mean square), then
propagates the length map through every layer. Back-propagated errors are
predicted as a profile relative to the output layer (the loss sets that level),
anchored at the measured output-layer delta_ms. Weight-gradient norms use the
independence approximation ||dL/dW_l||^2 ~ n_(l-1) n_l E[a_(l-1)^2] E[delta_l^2],
anchored at the output layer: a shape, not a level.
"""
import math

import numpy as np
import pandas as pd

from nncore import theory as mf

from .observations import pow10

THEORY_COLUMNS = ["activation", "init", "depth", "layer", "stat", "value"]
NEEDS_INPUT = ("uniform", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal",
               "normal", "orthogonal")


def _init_params(run):
    params = {}
    for key in ("sigma_w", "gain"):
        value = run.get(key)
        if value is not None and np.isfinite(value):
            params[key] = float(value)
    return params


def _sigma_b2(run):
    value = run.get("sigma_b")
    return float(value) ** 2 if value is not None and np.isfinite(value) else 0.0


def _alpha(run):
    value = run.get("alpha")
    return float(value) if value is not None and np.isfinite(value) else 0.01


def run_prediction(run, measured):
    """{stat: array over layers} predicted for one run, or None when theory does not apply.

    ``measured`` maps stat -> array over layers 1..L at step 0."""
    if run["init"] not in NEEDS_INPUT or run["activation"] not in mf_activations():
        return None
    L = int(run["depth"]) + 1
    q1 = measured.get("preact_var")
    if q1 is None or len(q1) != L or not np.isfinite(q1[0]):
        return None
    n_out = _logged_int(run, "n_out", 10)
    params = _init_params(run)
    sigma_b2 = _sigma_b2(run)
    # Runs logged before the n_in/n_out tags: digits' 64 inputs and 10 classes.
    n_in = _logged_int(run, "n_in", 64)
    sizes = [n_in] + [int(run["width"])] * int(run["depth"]) + [n_out]
    try:
        sw2_1 = mf.sigma_w2(run["init"], sizes[0], sizes[1], **params)
        input_ms = max((q1[0] - sigma_b2) / sw2_1, 0.0) if sw2_1 > 0 else 0.0
        pred = mf.predict(sizes, run["activation"], run["init"], input_ms, sigma_b2=sigma_b2,
                          init_params=params, alpha=_alpha(run))
    except (ValueError, ArithmeticError):
        return None
    out = {"preact_var": pred["preact_var"], "act_var": pred["act_var"]}
    delta_L = measured.get("delta_ms")
    if delta_L is not None and len(delta_L) == L and np.isfinite(delta_L[-1]) and delta_L[-1] > 0:
        out["delta_ms"] = pred["delta_ms"] * delta_L[-1]
        grad_L = measured.get("grad_norm")
        if grad_L is not None and len(grad_L) == L and np.isfinite(grad_L[-1]) and grad_L[-1] > 0:
            act_ms = np.concatenate([[input_ms], pred["act_var"][:-1] + pred["act_mean"][:-1] ** 2])
            fan = np.array([sizes[i] * sizes[i + 1] for i in range(L)], dtype=float)
            shape = np.sqrt(fan * act_ms * pred["delta_ms"])
            if shape[-1] > 0:
                out["grad_norm"] = shape / shape[-1] * grad_L[-1]
    return out


def mf_activations():
    """The activations the mean-field theory covers, from nncore's registry."""
    return mf.supported()


def _logged_int(run, key, default):
    value = run.get(key)
    return int(value) if value is not None and np.isfinite(value) else default


def _measured_at_init(layer_stats, run_id):
    rows = layer_stats[(layer_stats["run_id"] == run_id) & (layer_stats["step"] == 0)]
    return {stat: group.sort_values("layer")["value"].to_numpy() for stat, group in rows.groupby("stat")}


def theory_frame(layer_stats, runs):
    """Predictions for every (activation, init, depth) of ``runs``, long format
    (activation, init, depth, layer, stat, value); one run (the first seed) per configuration."""
    frames = []
    if runs.empty or layer_stats.empty:
        return pd.DataFrame(columns=THEORY_COLUMNS)
    init_stats = layer_stats[layer_stats["step"] == 0]
    for _, run in runs.drop_duplicates(["activation", "init", "depth"]).iterrows():
        pred = run_prediction(run, _measured_at_init(init_stats, run["run_id"]))
        if not pred:
            continue
        for stat, values in pred.items():
            frames.append(pd.DataFrame({"activation": run["activation"], "init": run["init"],
                                        "depth": int(run["depth"]), "layer": np.arange(1, len(values) + 1),
                                        "stat": stat, "value": values}))
    if not frames:
        return pd.DataFrame(columns=THEORY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _slope(values):
    """Least-squares slope of ln(values) per layer over finite positive entries."""
    values = np.asarray(values, dtype=float)
    layers = np.arange(1, values.size + 1)
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(layers[ok], np.log(values[ok]), 1)[0])


def _rel_error(predicted, measured):
    if not (np.isfinite(predicted) and np.isfinite(measured)) or measured == 0:
        return math.nan
    return abs(predicted - measured) / abs(measured)


def comparison_table(layer_stats, runs):
    """Theory vs measurement at the largest depth, per activation x init: the per-layer
    slope of ln delta_ms over the hidden layers, and the pre-activation variance of the
    last hidden layer, predicted and measured, with relative errors."""
    rows = []
    if runs.empty:
        return pd.DataFrame()
    deepest = runs[runs["depth"] == runs["depth"].max()]
    init_stats = layer_stats[layer_stats["step"] == 0]
    for _, run in deepest.drop_duplicates(["activation", "init"]).iterrows():
        measured = _measured_at_init(init_stats, run["run_id"])
        pred = run_prediction(run, measured)
        if not pred or "delta_ms" not in pred:
            continue
        hidden = slice(0, int(run["depth"]))
        slope_pred, slope_meas = _slope(pred["delta_ms"][hidden]), _slope(measured["delta_ms"][hidden])
        q_pred, q_meas = pred["preact_var"][int(run["depth"]) - 1], measured["preact_var"][int(run["depth"]) - 1]
        rows.append({"activation": run["activation"], "init": run["init"], "depth": int(run["depth"]),
                     "slope_pred": slope_pred, "slope_meas": slope_meas,
                     "slope_rel_err": _rel_error(slope_pred, slope_meas),
                     "q_pred": q_pred, "q_meas": q_meas, "q_rel_err": _rel_error(q_pred, q_meas)})
    return pd.DataFrame(rows)


def _fmt(value, digits=3):
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def markdown_section(layer_stats, runs):
    """The report's "Theory vs measurement" section (list of lines); empty when nothing applies."""
    table = comparison_table(layer_stats, runs)
    if table.empty:
        return []
    lines = ["## Theory vs measurement", "",
             "Mean-field predictions (Poole et al. 2016; Schoenholz et al. 2017) at initialization, "
             f"from nncore.theory, for the deepest networks (depth {int(table['depth'].max())}). "
             "The slope is d ln(delta_ms)/d layer over the hidden layers: positive means the error "
             "shrinks toward the input. q is the pre-activation variance of the last hidden layer, "
             "predicted by the length map from the measured first layer. The dashed lines in "
             "Figures 1, 3 and 4 are the same predictions.", "",
             "| activation | init | slope predicted | slope measured | abs. diff | rel. error | q predicted | q measured | rel. error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.activation} | {row.init} | {_fmt(row.slope_pred)} | {_fmt(row.slope_meas)} | "
                     f"{_fmt(abs(row.slope_pred - row.slope_meas), 2)} | {_fmt(100 * row.slope_rel_err, 2)}% | {_fmt(row.q_pred)} | {_fmt(row.q_meas)} | "
                     f"{_fmt(100 * row.q_rel_err, 2)}% |")
    finite = table["slope_rel_err"].dropna()
    if not finite.empty:
        worst = table.loc[table["slope_rel_err"].idxmax()]
        lines += ["", f"- Median relative error of the delta_ms slope: {100 * finite.median():.1f}%; "
                      f"largest for {worst['activation']} + {worst['init']} ({100 * worst['slope_rel_err']:.1f}%)."]
    far = table[table["q_rel_err"] > 0.5]
    rectifiers = far[far["activation"].isin(("relu", "leaky_relu"))]
    if not rectifiers.empty:
        depth, width = int(rectifiers["depth"].iloc[0]), int(deepest_width(runs))
        spread = math.sqrt(5.0 * depth / width)
        ratios = np.log10(rectifiers["q_meas"] / rectifiers["q_pred"])
        low, high = pow10(ratios.min()), pow10(ratios.max())
        span = low if low == high else f"{low} to {high}"
        lines.append(f"- For {' and '.join(sorted(set(rectifiers['activation'])))} the measured q at depth {depth} is "
                     f"{span} of the mean-field value. "
                     f"Mean field is the infinite-width average: at width {width} each rectifier layer multiplies q by "
                     f"a random factor of relative variance about 5/{width}, so ln q of one network spreads by about "
                     f"sqrt(5 L / n) = {spread:.1f} and drifts down by about 5 L / (2 n) = {5 * depth / (2 * width):.1f} "
                     "(Jensen) over the depth.")
    lines.append("")
    return lines


def deepest_width(runs):
    return runs.loc[runs["depth"] == runs["depth"].max(), "width"].iloc[0]
