"""The report section of the remedies study (conf/experiment/remedies.yaml): plain, residual
(scale 1 and 1/sqrt(depth)), BatchNorm, LayerNorm and residual + LayerNorm networks side by side.

Per architecture it gives the per-layer profiles at initialization with the mean-field theory
dashed (nncore.theory for plain nets, nncore.theory_residual for residual ones,
nncore.theory_batchnorm for normalized ones), the diagnosis at init and at the end, and the
trainability (the ``pathology_init``, ``pathology_final`` and ``trainability`` tags of the
diagnosis, when the runs have them), the measured BatchNorm explosion rate against lambda, the
measured residual growth against theory, and a cure table: for each pathology that the plain
network shows at init, how the same (activation, init) fared under each other architecture.
Every number is computed from the runs.
"""
import math
from dataclasses import replace

import numpy as np
import pandas as pd

from nncore import theory as mf
from nncore import theory_batchnorm, theory_residual

from .diagnosis import NO_DATA
from .diagnosis import with_diagnosis as diagnosed
from .figures import THEORY_STYLE, new_figure, no_data_figure, ordered_colors, save_figure, styled, suptitle
from .sections.section import figure_lines
from .theory import activation_of, network_of

NORM_NAMES = {"batch": "BatchNorm", "layer": "LayerNorm"}  # tag norm -> its name
PROFILE_STATS = ("grad_norm", "delta_ms", "act_ms")
PROFILE_LABELS = {"grad_norm": "||dL/dW_l||", "delta_ms": "mean (dl_n/dz_l)^2", "act_ms": "E[a_l^2]"}
NO_THEORY = ("constant",)


def _scale_text(scale, depth):
    if scale == 1.0:
        return "1"
    if abs(scale - 1.0 / math.sqrt(depth)) < 5e-4:  # the tag keeps 1/sqrt(depth) to a few digits
        return f"1/sqrt({depth})"
    return f"{scale:.3g}"


def describe(run):
    """(display order, name) of a run's architecture from its tags norm, residual and residual_scale
    (the runs table's residual_scale is NaN for a plain stack): plain, residual (scale 1),
    residual (scale 1/sqrt(50)), BatchNorm, LayerNorm, residual + LayerNorm, ..."""
    norm = NORM_NAMES.get(run["norm"])
    scale = float(run["residual_scale"])
    residual = math.isfinite(scale)
    if residual:
        name = "residual" if norm and scale == 1.0 else f"residual (scale {_scale_text(scale, int(run['depth']))})"
        name = f"{name} + {norm}" if norm else name
    else:
        name = norm or "plain"
    rank = 3 if residual and norm else 2 if norm else 1 if residual else 0
    return (rank, list(NORM_NAMES).index(run["norm"]) if norm else -1, -scale if residual else 0.0), name


def _architectures(runs):
    """{arch tag: (display order, name)}, described from each architecture's first run."""
    return {row["arch"]: describe(row) for row in runs.drop_duplicates("arch").to_dict("records")}


def arch_order(runs):
    """The study's architectures (their arch tags) in display order."""
    described = _architectures(runs)
    return sorted(described, key=lambda arch: (described[arch][0], arch))


def arch_name(runs, arch):
    """The display name of architecture ``arch`` (its tag) among ``runs``."""
    return _architectures(runs)[arch][1]


# ------------------------------------------------------------------ measurements
def init_profiles(layer_stats, run_id):
    """{stat: array over layers 1..L} at step 0, with act_ms = act_var + act_mean^2."""
    rows = layer_stats[(layer_stats["run_id"] == run_id) & (layer_stats["step"] == 0)]
    out = {stat: grp.sort_values("layer")["value"].to_numpy(float) for stat, grp in rows.groupby("stat")}
    if "act_var" in out and "act_mean" in out and len(out["act_var"]) == len(out["act_mean"]):
        out["act_ms"] = out["act_var"] + out["act_mean"] ** 2
    return out


def fitted_rate(delta_ms, lo, hi):
    """exp(-slope) of ln delta_ms over layers lo..hi (1-based, inclusive): the per-layer growth
    toward the input; nan when fewer than 2 finite positive points."""
    layers = np.arange(lo, hi + 1)
    values = np.asarray(delta_ms, float)[layers - 1]
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:
        return math.nan
    return math.exp(-np.polyfit(layers[ok], np.log(values[ok]), 1)[0])


# ------------------------------------------------------------------------ theory
def prediction(run, measured):
    """{stat: array over layers} of the run's architecture at init, or None where no theory applies.

    act_ms is absolute (from the input mean square implied by the measured layer-1 preact_var);
    delta_ms is anchored at the measured output layer (the loss sets its level)."""
    q1 = measured.get("preact_var")
    depth = int(run["depth"])
    network = network_of(run)
    if run["init"] in NO_THEORY or q1 is None or len(q1) != depth + 1 or not np.isfinite(q1[0]) or network is None:
        return None
    sizes, params, sigma_b2 = list(network.sizes), network.init_params, network.sigma_b2
    norm, scale = network.norm, network.residual_scale
    try:
        act = activation_of(run)
        input_ms = max((q1[0] - sigma_b2) / mf.sigma_w2(run["init"], sizes[0], sizes[1], **params), 0.0)
        if math.isfinite(scale):
            if norm == "batch":
                return None  # residual + BatchNorm: no theory here
            th = theory_residual.predict(sizes, act, run["init"], input_ms, residual_scale=scale,
                                         norm=norm, sigma_b2=sigma_b2, init_params=params)
            act_ms = th["act_ms"].copy()
        elif norm is not None:
            th = theory_batchnorm.predict(sizes, act, run["init"], norm, input_ms,
                                          sigma_b2=sigma_b2, init_params=params)
            act_ms = th["act_var"] + th["act_mean"] ** 2
        else:
            th = mf.predict(sizes, act, run["init"], input_ms, sigma_b2=sigma_b2, init_params=params)
            act_ms = th["act_var"] + th["act_mean"] ** 2
    except (ValueError, ArithmeticError):
        return None
    act_ms[-1] = np.nan  # the logits' second moment is not the network's signal
    delta = measured.get("delta_ms")
    anchor = delta[-1] if delta is not None and len(delta) == depth + 1 else math.nan
    return {"act_ms": act_ms, "delta_ms": th["delta_ms"] * anchor}


# ----------------------------------------------------------------------- figure
def _combo(run):
    return f"{run['activation']} + {run['init']}"


@styled
def fig_profiles(layer_stats, runs):
    """Rows = grad_norm, delta_ms, act_ms at init (log y); columns = architectures; one colour per
    activation + init; theory dashed in the same colour."""
    title = "Remedies at initialization: per-layer profiles (theory dashed)"
    if runs.empty:
        return no_data_figure(title, "no runs")
    archs = arch_order(runs)
    combos = sorted({_combo(r) for _, r in runs.iterrows()})
    colors = ordered_colors(combos)
    fig, axes = new_figure(len(PROFILE_STATS), len(archs), sharex=True, extra_width=2.4)
    for j, arch in enumerate(archs):
        for _, run in runs[runs["arch"] == arch].sort_values(["activation", "init"]).iterrows():
            measured = init_profiles(layer_stats, run["run_id"])
            theory = prediction(run, measured)
            for i, stat in enumerate(PROFILE_STATS):
                values = measured.get(stat)
                if values is None:
                    continue
                if stat == "act_ms":
                    values = values[:-1]  # hidden layers: the logits' second moment is not the signal
                layers = np.arange(1, len(values) + 1)
                ok = np.isfinite(values) & (values > 0)
                axes[i, j].plot(layers[ok], values[ok], color=colors[_combo(run)], label=_combo(run))
                if theory is not None and stat in theory:
                    t = theory[stat]
                    good = np.isfinite(t) & (t > 0)
                    axes[i, j].plot(np.arange(1, len(t) + 1)[good], t[good], color=colors[_combo(run)], **THEORY_STYLE)
        axes[0, j].set_title(arch_name(runs, arch), fontsize=8)
        axes[-1, j].set_xlabel("layer")
    for i, stat in enumerate(PROFILE_STATS):
        axes[i, 0].set_ylabel(PROFILE_LABELS[stat])
        for ax in axes[i]:
            ax.set_yscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.ravel():
        h, lab = ax.get_legend_handles_labels()
        if len(lab) > len(labels):
            handles, labels = h, lab
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7, title="activation + init")
    suptitle(fig, title)
    return fig


# ----------------------------------------------------------------------- tables
def _markdown(frame):
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines + [""]


def _flags(text):
    if not isinstance(text, str) or text in ("", "nan", "unknown", "n/a"):
        return None
    return set() if text == "none" else {f.strip() for f in text.split(",") if f.strip()}


def _per_architecture(runs, cell_text):
    """One row per (activation, init), one column per architecture, cells from ``cell_text(run)``."""
    rows = []
    for (act, init), grp in runs.groupby(["activation", "init"], sort=True):
        row = {"activation": act, "init": init}
        for arch in arch_order(runs):
            cell = grp[grp["arch"] == arch]
            row[arch_name(runs, arch)] = "-" if cell.empty else cell_text(cell.iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def diagnosis_table(runs):
    """Per (activation, init) and architecture: 'init -> final, trainability (acc)'."""
    return _per_architecture(runs, lambda r: f"{r['pathology_init']} -> {r['pathology_final']}, "
                                             f"{r['trainability']} (acc {r['acc/val']:.2f})")


def trainability_table(runs):
    """Final validation accuracy (and outcome or trainability) per (activation, init) x architecture."""
    judged = "trainability" in runs.columns and not runs["trainability"].isin(["", NO_DATA]).all()
    verdict = "trainability" if judged else "outcome"
    return _per_architecture(runs, lambda r: f"{r['acc/val']:.2f} ({r[verdict]})")


def cure_table(runs):
    """Architecture x pathology at init of the plain network.

    For each flag P in the plain runs' ``pathology_init``, the cases are the (activation, init)
    pairs whose plain run has P at init. A cell gives, over those cases, how many runs of that
    architecture still have P at init and how many end ``trained``; "cured" when none has P at
    init and all end trained. Returns (DataFrame, list of pathologies)."""
    plain = runs[runs["arch"] == "plain"]
    cases = {}
    for _, r in plain.iterrows():
        for flag in sorted(_flags(r["pathology_init"]) or ()):
            cases.setdefault(flag, []).append((r["activation"], r["init"]))
    rows = []
    for arch in arch_order(runs):
        row = {"architecture": arch_name(runs, arch)}
        for flag, pairs in sorted(cases.items()):
            sub = [runs[(runs["arch"] == arch) & (runs["activation"] == a) & (runs["init"] == i)] for a, i in pairs]
            sub = [s.iloc[0] for s in sub if not s.empty]
            if not sub:
                row[flag] = "-"
                continue
            still = sum(flag in (_flags(s["pathology_init"]) or ()) for s in sub)
            trained = sum(s["trainability"] == "trained" for s in sub)
            verdict = " (cured)" if still == 0 and trained == len(sub) and arch != "plain" else ""
            row[flag] = f"{flag} at init {still}/{len(sub)}, trained {trained}/{len(sub)}{verdict}"
        rows.append(row)
    return pd.DataFrame(rows), sorted(cases)


def batchnorm_rates(layer_stats, runs):
    """Measured per-layer growth of delta_ms at init (fit over hidden layers 2..depth-1) of the
    BatchNorm runs, beside lambda = E[phi'^2]/Var[phi] and the layer-by-layer prediction."""
    rows = []
    for _, run in runs[runs["norm"] == "batch"].sort_values(["activation", "init"]).iterrows():
        measured = init_profiles(layer_stats, run["run_id"])
        delta = measured.get("delta_ms")
        depth = int(run["depth"])
        if delta is None or len(delta) != depth + 1 or depth < 4:
            continue
        rate = fitted_rate(delta, 2, depth - 1)
        try:
            lam = theory_batchnorm.batchnorm_rate(activation_of(run))
        except ValueError:
            continue
        rows.append({"architecture": arch_name(runs, run["arch"]), "activation": run["activation"], "init": run["init"],
                     "_error": rate / lam - 1,
                     "measured rate": f"{rate:.3f}", "lambda (theory)": f"{lam:.3f}",
                     "error": f"{100 * (rate / lam - 1):+.1f}%",
                     "growth over the stack": f"{delta[0] / delta[depth - 1]:.3g}"})
    return pd.DataFrame(rows)


def residual_growth(layer_stats, runs):
    """Measured growth at init from hidden layer 1 to the top hidden layer of the second moment
    E[a^2] and of the error delta_ms (input-ward), beside theory_residual's prediction."""
    rows = []
    residual = runs[runs["residual_scale"].notna()]
    order = {arch: i for i, arch in enumerate(arch_order(runs))}
    residual = residual.assign(_order=residual["arch"].map(order)).sort_values(["_order", "activation", "init"])
    for _, run in residual.iterrows():
        measured = init_profiles(layer_stats, run["run_id"])
        depth = int(run["depth"])
        ms, delta = measured.get("act_ms"), measured.get("delta_ms")
        theory = prediction(run, measured)
        if ms is None or delta is None or len(ms) != depth + 1 or theory is None:
            continue
        top = depth - 1  # index of the top hidden layer
        m_fwd, t_fwd = ms[top] / ms[0], theory["act_ms"][top] / theory["act_ms"][0]
        m_bwd, t_bwd = delta[0] / delta[top], theory["delta_ms"][0] / theory["delta_ms"][top]
        rows.append({"architecture": arch_name(runs, run["arch"]), "scale": f"{run['residual_scale']:.3g}",
                     "activation": run["activation"], "init": run["init"],
                     "E[a^2] growth, measured": f"{m_fwd:.3g}", "E[a^2] growth, theory": f"{t_fwd:.3g}",
                     "error growth, measured": f"{m_bwd:.3g}", "error growth, theory": f"{t_bwd:.3g}",
                     "_fwd": m_fwd / t_fwd, "_bwd": m_bwd / t_bwd})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- section
def with_diagnosis(frames):
    """The runs with the diagnosis columns (analysis.diagnosis.with_diagnosis: the jobs' tags)."""
    return diagnosed(frames).runs


PROFILES = "remedies_profiles"   # the study's figure, figures/<PROFILES>.png


def select_runs(frames):
    """The study's runs, each with its architecture (plain when the runs were logged before the
    arch, norm and residual_scale tags) and the diagnosis columns."""
    runs = frames.runs
    if "arch" not in runs.columns:
        runs = runs.assign(arch="plain", norm="none", residual_scale=np.nan)
    return with_diagnosis(replace(frames, runs=runs))


def has_tags(runs):
    """Whether the runs carry the diagnosis tags (pathology_init, pathology_final, trainability)."""
    return not runs["pathology_init"].isin(["", NO_DATA]).all()


def draw(layer_stats, runs, figure_dir):
    """Save the per-layer profiles figure; its markdown (image and caption)."""
    save_figure(fig_profiles(layer_stats, runs), figure_dir, PROFILES)
    width, depth = int(runs["width"].max()), int(runs["depth"].max())
    return figure_lines(PROFILES, "Remedies at init",
                        f"Weight-gradient norm, back-propagated error and activation second moment per layer "
                        f"at initialization (depth {depth}, width {width}), one column per architecture; dashed: "
                        f"mean-field theory at infinite width (nncore.theory, theory_residual, theory_batchnorm; "
                        f"the error anchored at the measured output layer).")


def tabulate(runs):
    """The trainability table, and the diagnosis table when the runs carry the tags."""
    tagged = has_tags(runs)
    lines = ["### Trainability", ""]
    lines += ["Final validation accuracy (and " + ("trainability" if tagged else "outcome") + ") per "
              "activation + init and architecture.", ""]
    lines += _markdown(trainability_table(runs))

    lines += ["### Diagnosis at init and at the end", ""]
    if tagged:
        lines += ["pathology_init -> pathology_final, trainability (final validation accuracy).", ""]
        lines += _markdown(diagnosis_table(runs))
    else:
        lines += ["These runs carry no diagnosis tags (pathology_init, pathology_final, trainability), so no "
                  "diagnosis and no cure table are given.", ""]
    return lines


def observe_batchnorm(layer_stats, runs):
    """The BatchNorm runs' measured error growth against lambda: table and one sentence per activation."""
    bn = batchnorm_rates(layer_stats, runs)
    width, depth = int(runs["width"].max()), int(runs["depth"].max())
    lines = ["### BatchNorm: the gradient explosion at init", ""]
    if bn.empty:
        return lines + ["No BatchNorm runs.", ""]
    lines += [f"Per-layer growth of the back-propagated error toward the input (fit of ln delta_ms over hidden "
              f"layers 2..{depth - 1}) against lambda = E[phi'(u)^2] / Var[phi(u)], u ~ N(0, 1) (Yang et al. "
              f"2019; pi/(pi-1) = {math.pi / (math.pi - 1):.4f} for relu), the large-width, large-batch limit: "
              f"at width {width} and the probe batch the measurement runs O(1/min(width, batch)) above it.", ""]
    lines += _markdown(bn.drop(columns="_error"))
    for act, grp in bn.groupby("activation", sort=True):
        lo, hi = 100 * grp["_error"].min(), 100 * grp["_error"].max()
        span = f"{lo:+.1f}%" if round(lo, 1) == round(hi, 1) else f"{lo:+.1f}% to {hi:+.1f}%"
        lines.append(f"- {act}: measured rate {span} from lambda = {grp['lambda (theory)'].iloc[0]} "
                     f"over {len(grp)} run(s).")
    return lines + [""]


def observe_residual(layer_stats, runs):
    """The residual runs' measured growth against the mean-field recursion: table and sentences."""
    res = residual_growth(layer_stats, runs)
    lines = ["### Residual stacks: growth against theory", ""]
    if res.empty:
        return lines + ["No residual runs with a theory.", ""]
    lines += ["Growth at init of the activations' second moment E[a^2] from hidden layer 1 to the top hidden "
              "layer (its ratio), and of the error delta_ms from the top hidden layer down to layer 1, measured "
              "and predicted by the mean-field recursion (nncore.theory_residual, infinite width).", ""]
    lines += _markdown(res.drop(columns=["_fwd", "_bwd"]))
    fwd_off = res[(res["_fwd"] > 2) | (res["_fwd"] < 0.5)]
    bwd_off = res[res["_bwd"] > 10]
    lines.append(f"- E[a^2] growth within a factor 2 of theory in {len(res) - len(fwd_off)} of {len(res)} runs.")
    if bwd_off.empty:
        lines.append("- The error's growth is within a factor 10 of theory in every run.")
    else:
        cases = ", ".join(sorted({f"{r['activation']} ({r['architecture']})" for _, r in bwd_off.iterrows()}))
        lines.append(f"- The error grows more than 10 times faster than predicted in {len(bwd_off)} of {len(res)} "
                     f"runs: {cases}; up to {bwd_off['_bwd'].max():.3g} times. The prediction assumes gradient "
                     f"independence, which a non-centred activation breaks in a residual stack (the error's "
                     f"component along the activations' mean direction grows faster: nncore.theory_residual).")
    return lines + [""]


def observe_cures(runs):
    """Which architecture cured which pathology of the plain network (runs with the diagnosis tags)."""
    table, pathologies = cure_table(runs)
    lines = ["### Which architecture cured which pathology", ""]
    if not pathologies:
        return lines + ["The plain networks show no pathology at init: nothing to cure.", ""]
    lines += ["For each pathology of the plain network at init, over the activation + init pairs that have "
              "it: how many runs of each architecture still have it at init and how many end trained "
              "(cured: none has it and all trained).", ""]
    return lines + _markdown(table)


def remedies(frames, figure_dir):
    """The study's section: the profiles figure, the tables, the BatchNorm and residual measurements
    against theory, and (with the diagnosis tags) the cure table."""
    runs, stats = select_runs(frames), frames.layer_stats
    lines = ["## Remedies: residual connections, BatchNorm and LayerNorm", "", *draw(stats, runs, figure_dir),
             *tabulate(runs), *observe_batchnorm(stats, runs), *observe_residual(stats, runs)]
    if has_tags(runs):
        lines += observe_cures(runs)
    return lines
