"""Mean-field predictions beside the measurements (nncore.theory), per run at initialization.

The prediction of a run starts from its measured layer-1 pre-activation variance
(q^1 = sigma_w^2 mean(x^2) + sigma_b^2 gives the input's mean square), then
propagates the length map through every layer. Back-propagated errors are
predicted as a profile relative to the output layer (the loss sets that level),
anchored at the measured output-layer delta_ms. Weight-gradient norms use the
independence approximation ||dL/dW_l||^2 ~ n_(l-1) n_l E[a_(l-1)^2] E[delta_l^2],
anchored at the output layer: a shape, not a level.

For the activations of ``band_activations()`` (those of ``nncore.theory_finite_width.supported()``
that are not linear: relu and leaky_relu) with zero biases, each run also gets the finite-width band of
``nncore.theory_finite_width`` (log-normal; Hanin 2018, Hanin & Rolnick 2018) at its widths:
rows ``preact_var:median``, ``preact_var:low``, ``preact_var:high`` (90% interval of q_l), and
the same for ``act_var`` (the band of E[a^2] scaled to the variance, whose share of it is
fixed for these activations). The band is for one input's second moment; a probe averages
over a batch, which shares the weights, so for relu and leaky_relu (deep layers make the
inputs nearly collinear) it fluctuates nearly as much (slightly less). A linear (identity)
network keeps its inputs apart, and its batch average fluctuates far less than the band (see
``nncore.theory_finite_width``): a measurement would lie inside it whatever the network, so no
band is drawn for it. For sigmoid, tanh and softsign no band is drawn either: their per-layer
factors depend on q and no closed form of their spread is used here.

A run's activation is rebuilt with its logged parameters (``activation_of``: the columns named
as the activation class's ``params``, e.g. leaky_relu's alpha), so the predictions use the slope
the network had.
"""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nncore import activations
from nncore import theory as mf
from nncore import theory_finite_width as fw

THEORY_COLUMNS = ["activation", "init", "depth", "layer", "stat", "value"]
NEEDS_INPUT = ("uniform", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal",
               "normal", "orthogonal")


def _finite(run, key):
    """The run's column ``key`` as a float, or None when absent, NaN or not a number."""
    try:
        value = float(run.get(key))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Network:
    """What the theory needs of one run, from its row of the runs table (tags and params)."""
    sizes: tuple          # layer widths [n_in, width x depth, n_out] (tags n_in, n_out, width, depth)
    init: str
    init_params: dict     # sigma_w and gain where logged
    sigma_b2: float       # sigma_b^2 (0 when not logged)
    norm: object          # None, "batch" or "layer" (tag norm)
    residual_scale: float  # the residual branch's scale, NaN for a plain stack (tags residual, residual_scale)


NO_SIZES_NOTE = ("{count} run(s) logged no n_in / n_out tags (logged before them): no theory for them; "
                 "re-run them to have it")


def network_of(run):
    """The run's Network, or None when the run logged no n_in / n_out (runs logged before those
    tags: their sizes are not guessed; ``no_sizes_note`` tells what to re-run)."""
    n_in, n_out = _finite(run, "n_in"), _finite(run, "n_out")
    if n_in is None or n_out is None:
        return None
    params = {key: _finite(run, key) for key in ("sigma_w", "gain") if _finite(run, key) is not None}
    norm = run.get("norm", "none")
    return Network(sizes=(int(n_in), *[int(run["width"])] * int(run["depth"]), int(n_out)), init=run["init"],
                   init_params=params, sigma_b2=(_finite(run, "sigma_b") or 0.0) ** 2,
                   norm=None if norm in (None, "none", "") else norm,
                   residual_scale=math.nan if _finite(run, "residual_scale") is None else _finite(run, "residual_scale"))


def no_sizes_note(runs):
    """The data note for the runs without n_in / n_out tags ("" when every run has them)."""
    count = sum(network_of(run) is None for run in runs.to_dict("records"))
    return NO_SIZES_NOTE.format(count=count) if count else ""


def activation_of(run):
    """The run's nncore activation with its logged parameters (a parameter not logged, NaN, takes
    the class's default). ValueError for a name the registry does not know."""
    name = run["activation"]
    cls = activations.REGISTRY.get(name)
    if cls is None:
        return activations.get(name)  # the ValueError listing the valid names
    params = {}
    for key in cls.params:
        value = run.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            params[key] = value
    return activations.get(name, **params)


def run_prediction(run, measured):
    """{stat: array over layers} predicted for one run, or None when theory does not apply.

    ``measured`` maps stat -> array over layers 1..L at step 0."""
    if run["init"] not in NEEDS_INPUT or run["activation"] not in mf_activations():
        return None
    L = int(run["depth"]) + 1
    q1 = measured.get("preact_var")
    network = network_of(run)
    if q1 is None or len(q1) != L or not np.isfinite(q1[0]) or network is None:
        return None
    sizes, params, sigma_b2 = list(network.sizes), network.init_params, network.sigma_b2
    try:
        sw2_1 = mf.sigma_w2(run["init"], sizes[0], sizes[1], **params)
        input_ms = max((q1[0] - sigma_b2) / sw2_1, 0.0) if sw2_1 > 0 else 0.0
        act = activation_of(run)
        pred = mf.predict(sizes, act, run["init"], input_ms, sigma_b2=sigma_b2, init_params=params)
    except (ValueError, ArithmeticError):
        return None
    out = {"preact_var": pred["preact_var"], "act_var": pred["act_var"]}
    out.update(_band(run, act, sizes, params, sigma_b2, input_ms, pred))
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


BAND_LEVEL = 0.9


def _band(run, act, sizes, params, sigma_b2, input_ms, pred):
    """The finite-width rows of one run ({} when no band applies)."""
    if run["activation"] not in band_activations() or sigma_b2 != 0.0:
        return {}
    try:
        band = fw.band(sizes, act, run["init"], input_ms, init_params=params, level=BAND_LEVEL)
    except (ValueError, ArithmeticError):
        return {}
    out = {f"preact_var:{key}": band["preact_var"][key] for key in ("median", "low", "high")}
    with np.errstate(divide="ignore", invalid="ignore"):
        share = pred["act_var"] / band["act_ms"]["mean"]   # Var[a] / E[a^2] per hidden layer
    for key in ("median", "low", "high"):
        act = band["act_ms"][key] * share
        act[-1] = band["preact_var"][key][-1]               # the output layer: the logits' q
        out[f"act_var:{key}"] = act
    return out


def band_activations():
    """The activations whose runs get a finite-width band: those nncore.theory_finite_width covers,
    minus the linear ones (equal slopes), whose batch-averaged probes it does not describe."""
    return tuple(name for name in fw.supported() if len(set(activations.get(name).slopes)) > 1)


def mf_activations():
    """The activations the mean-field theory covers, from nncore's registry."""
    return mf.supported()


def _by_stat(rows):
    """{stat: values ordered by layer} of one run's rows at one step."""
    rows = rows.sort_values(["stat", "layer"])
    stats, values = rows["stat"].to_numpy(), rows["value"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, stats[1:] != stats[:-1], True])
    return {stats[lo]: values[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])}


def _init_stats_by_run(layer_stats, run_ids):
    """{run_id: {stat: values over layers}} at step 0 for ``run_ids``, in one pass."""
    rows = layer_stats[(layer_stats["step"] == 0) & layer_stats["run_id"].isin(run_ids)]
    return {run_id: _by_stat(group) for run_id, group in rows.groupby("run_id", sort=False)}


def theory_frame(layer_stats, runs):
    """Predictions for every (activation, init, depth) of ``runs``, long format
    (activation, init, depth, layer, stat, value); one run (the first seed) per configuration."""
    if runs.empty or layer_stats.empty:
        return pd.DataFrame(columns=THEORY_COLUMNS)
    chosen = runs.drop_duplicates(["activation", "init", "depth"])
    measured = _init_stats_by_run(layer_stats, chosen["run_id"])
    # Columns as lists, made into one frame at the end: a small frame per prediction and a
    # concat took most of this function's time.
    columns = {name: [] for name in THEORY_COLUMNS}
    for _, run in chosen.iterrows():
        pred = run_prediction(run, measured.get(run["run_id"], {}))
        for stat, values in (pred or {}).items():
            n = len(values)
            for name, value in (("activation", run["activation"]), ("init", run["init"]),
                                ("depth", int(run["depth"])), ("stat", stat)):
                columns[name] += [value] * n
            columns["layer"] += range(1, n + 1)
            columns["value"] += list(np.asarray(values, dtype=np.float64))
    if not columns["value"]:
        return pd.DataFrame(columns=THEORY_COLUMNS)
    return pd.DataFrame(columns)


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
    deepest = runs[runs["depth"] == runs["depth"].max()].drop_duplicates(["activation", "init"])
    by_run = _init_stats_by_run(layer_stats, deepest["run_id"])
    for _, run in deepest.iterrows():
        measured = by_run.get(run["run_id"], {})
        pred = run_prediction(run, measured)
        if not pred or "delta_ms" not in pred:
            continue
        hidden = slice(0, int(run["depth"]))
        slope_pred, slope_meas = _slope(pred["delta_ms"][hidden]), _slope(measured["delta_ms"][hidden])
        q_pred, q_meas = pred["preact_var"][int(run["depth"]) - 1], measured["preact_var"][int(run["depth"]) - 1]
        last = int(run["depth"]) - 1
        band = {key: pred.get(f"preact_var:{key}") for key in ("median", "low", "high")}
        has_band = band["median"] is not None
        measured_q = np.asarray(measured["preact_var"], dtype=float)
        inside_layers = ((measured_q >= band["low"]) & (measured_q <= band["high"])) if has_band else None
        rows.append({"activation": run["activation"], "init": run["init"], "depth": int(run["depth"]),
                     "slope_pred": slope_pred, "slope_meas": slope_meas,
                     "slope_rel_err": _rel_error(slope_pred, slope_meas),
                     "q_pred": q_pred, "q_meas": q_meas, "q_rel_err": _rel_error(q_pred, q_meas),
                     "q_median": band["median"][last] if has_band else math.nan,
                     "q_low": band["low"][last] if has_band else math.nan,
                     "q_high": band["high"][last] if has_band else math.nan,
                     "q_inside": bool(inside_layers[last]) if has_band else None,
                     "layers_inside": int(inside_layers.sum()) if has_band else None,
                     "layers": int(measured_q.size)})
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
             "Figures 1, 3 and 4 are the same predictions. Mean field is the infinite-width average; "
             f"for {', '.join(band_activations())} the table adds the finite-width median and 90% interval of q at the "
             f"run's widths (log-normal approximation, Hanin 2018; Hanin & Rolnick 2018: for ReLU ln q has variance "
             "about 5 Σ 1/nₗ and a median below the mean by half that), hatched in Figure 3.", "",
             "| activation | init | slope predicted | slope measured | abs. diff | rel. error | q predicted (mean field) "
             "| q measured | rel. error | q finite-width median [90%] | measured inside? |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        if row.q_inside is None:
            band, inside = "no band", "n/a"
        else:
            band = f"{_fmt(row.q_median)} [{_fmt(row.q_low)}, {_fmt(row.q_high)}]"
            inside = "inside" if row.q_inside else "outside"
        lines.append(f"| {row.activation} | {row.init} | {_fmt(row.slope_pred)} | {_fmt(row.slope_meas)} | "
                     f"{_fmt(abs(row.slope_pred - row.slope_meas), 2)} | {_fmt(100 * row.slope_rel_err, 2)}% | {_fmt(row.q_pred)} | {_fmt(row.q_meas)} | "
                     f"{_fmt(100 * row.q_rel_err, 2)}% | {band} | {inside} |")
    finite = table["slope_rel_err"].dropna()
    if not finite.empty:
        worst = table.loc[table["slope_rel_err"].idxmax()]
        lines += ["", f"- Median relative error of the delta_ms slope: {100 * finite.median():.1f}%; "
                      f"largest for {worst['activation']} + {worst['init']} ({100 * worst['slope_rel_err']:.1f}%)."]
    else:
        lines.append("")
    banded = table[table["q_inside"].notna()]
    for row in banded.itertuples(index=False):
        verdict = "inside" if row.q_inside else "outside"
        lines.append(f"- {row.activation} + {row.init}, depth {row.depth}: the measured q of the last hidden layer, "
                     f"{_fmt(row.q_meas)}, lies {verdict} its finite-width 90% interval [{_fmt(row.q_low)}, "
                     f"{_fmt(row.q_high)}] (mean field {_fmt(row.q_pred)}, a relative error of "
                     f"{100 * row.q_rel_err:.0f}% that finite width {'explains' if row.q_inside else 'does not explain'}); "
                     f"{int(row.layers_inside)} of its {int(row.layers)} layers lie inside their bands.")
    others = sorted(set(table.loc[table["q_inside"].isna(), "activation"]))
    if others:
        lines.append(f"- {', '.join(others)}: no finite-width band is drawn. Their per-layer fluctuation factors "
                     "depend on q itself and no closed form of the spread is used here (the log-normal result is "
                     "proved for ReLU-type networks); at width n they are also O(1/n) per layer in ln q, so "
                     "mean-field errors that grow with depth/width are expected there too.")
    lines.append("")
    return lines
