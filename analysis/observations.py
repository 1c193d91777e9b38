"""The sentences of the report, computed from the data.

Each ``*_observations`` function reads the same tables (and makes the same run
choices, via ``selection``) as the figure it describes, and returns a list of
sentences. Nothing here states a result that was not measured: when the data
cannot support a sentence, the function says what is missing instead.

Powers of ten are written in Unicode superscripts (``pow10``): 10⁻¹⁷·² is 10^-17.2.
"""
import numpy as np
import pandas as pd

from . import selection, tables
from .tables import FINAL, HEALTHY_LOG10_RATIO, INIT


ACCURACY_TIE = 0.01  # final accuracies closer than this are reported as a tie
NEGLIGIBLE_FRACTION = 0.005  # saturated fractions below this print as 0.00: say "none" instead


SUPERSCRIPT = str.maketrans("0123456789-.", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻·")


def pow10(exponent):
    """10 to the ``exponent`` in Unicode superscripts with one decimal, e.g. 10⁻¹⁷·² for 10^-17.2 (never
    "-0.0"): plain text, so it reads the same on GitHub, in MLflow's artifact viewer and in a run's note."""
    return "10" + f"{round(float(exponent), 1) + 0.0:.1f}".translate(SUPERSCRIPT)


def variant_text(row):
    """" (optimizer.lr=50, init.sigma_w=12)" for a row with a variant label, else ""."""
    variant = row.get("variant", "") if hasattr(row, "get") else ""
    return f" ({variant})" if isinstance(variant, str) and variant else ""


def config_name(row, with_optimizer=False, with_seed=False):
    """"sigmoid + uniform, depth 50" (", sgd", ", seed 0" on request), and the row's variant
    (the values of the params that vary beyond these axes) when it has one."""
    text = f"{row['activation']} + {row['init']}, depth {int(row['depth'])}"
    if with_optimizer:
        text += f", {row['optimizer']}"
    if with_seed:
        text += f", seed {int(row['seed'])}"
    return text + variant_text(row)


def listing(items, limit=5):
    """"a, b and c", cut to ``limit`` items ("... and 3 more")."""
    items = list(items)
    if len(items) > limit:
        items = items[:limit] + [f"{len(items) - limit} more"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _finite_rows(frame, column="value"):
    return frame[np.isfinite(frame[column].to_numpy(np.float64))]


def _config_ratios(layer_stats, runs, stat, when, top, bottom, by=("activation", "init", "depth")):
    """Median log10 ratio per configuration ``by`` (and variant, tables.with_variant; column value)
    and, with several seeds, its min and max over the configuration's runs (columns low, high)."""
    by = tables.with_variant(runs, by)
    ratios = tables.log10_layer_ratio(layer_stats, runs, stat, when, top, bottom)
    medians = tables.config_ratio(ratios, runs, by)
    frame = runs[["run_id", *by]].assign(value=runs["run_id"].map(ratios).to_numpy(np.float64))
    frame = frame[np.isfinite(frame["value"])]
    spread = frame.groupby(list(by), as_index=False)["value"].agg(low="min", high="max")
    return _finite_rows(medians.merge(spread, on=list(by), how="left"))


def seeds_of(runs):
    """The number of seeds per configuration (the largest)."""
    if runs.empty:
        return 0
    return int(runs.groupby(list(tables.with_variant(runs, ("activation", "init", "depth", "optimizer"))))["seed"]
               .nunique().max())


def spread_text(row, runs):
    """" [over k seeds: 10ᵃ to 10ᵇ]" for a ratio row with low/high, "" for one seed."""
    if seeds_of(runs) < 2 or "low" not in row or not np.isfinite(row["low"]):
        return ""
    return f" [over {seeds_of(runs)} seeds: {pow10(row['low'])} to {pow10(row['high'])}]"


def _judged(runs, column="pathology_init"):
    return column in runs and not runs.empty


def _extremes_at_max_depth(config_ratios):
    """(depth, rows at that depth sorted from most to least extreme |value|)."""
    depth = int(config_ratios["depth"].max())
    at_depth = config_ratios[config_ratios["depth"] == depth]
    order = at_depth["value"].abs().sort_values(ascending=False).index
    return depth, at_depth.loc[order]


def grad_init_observations(layer_stats, runs):
    """The most extreme and the most balanced layer-1 / layer-L gradient ratio at init,
    at the largest depth, and how many configurations stay within a factor 10."""
    ratios = _config_ratios(layer_stats, runs, "grad_norm", INIT, "first", "output")
    if ratios.empty:
        return ["No finite gradient norms at layers 1 and L at initialization: nothing to compare."]
    depth, ranked = _extremes_at_max_depth(ratios)
    worst = ranked.iloc[0]
    direction = "vanishes" if worst["value"] < 0 else "explodes"
    sentences = [f"{config_name(worst)}: the layer-1 gradient norm is {pow10(worst['value'])}{spread_text(worst, runs)} "
                 f"times the layer-{depth + 1} (output) gradient norm at initialization, the most extreme ratio at "
                 f"this depth: the gradient {direction} toward the input."]
    if len(ranked) > 1:
        best = ranked.iloc[-1]
        within = ranked[ranked["value"].abs() < HEALTHY_LOG10_RATIO]
        sentence = (f"The most balanced ratio at depth {depth} is {best['activation']} + {best['init']}"
                    f"{variant_text(best)} ({pow10(best['value'])}{spread_text(best, runs)}); {len(within)} of "
                    f"{len(ranked)} activation × init {'settings' if 'variant' in ranked else 'pairs'} have first and "
                    "last gradient norms within a factor 10")
        if _judged(runs):
            by = tables.with_variant(runs, ("activation", "init", "depth"))
            flagged = tables.flagged_configs(runs, by=by)
            blind = [f"{row['activation']} + {row['init']}{variant_text(row)}" for _, row in within.iterrows()
                     if tuple(row[name] for name in by) in flagged]
            sentence += (f", but the ratio is no health test: the diagnosis flags {len(blind)} of them at "
                         f"initialization ({listing(blind, 12)})" if blind else
                         ", and the diagnosis flags none of them at initialization")
        sentences.append(sentence + ".")
    return sentences


def _main_pathology(group, column="pathology_init"):
    """The most frequent tag of ``column`` among a configuration's runs."""
    return group[column].value_counts().index[0]


def diagnosis_headline(runs):
    """One sentence: at the largest depth, which activation x init pairs the diagnosis finds
    healthy at initialization, and how the others are flagged; None without a diagnosis."""
    if not _judged(runs):
        return None
    depth = int(runs["depth"].max())
    deepest = runs[runs["depth"] == depth]
    by = tables.with_variant(deepest, ("activation", "init", "depth"))
    flagged, judged = tables.flagged_configs(deepest, by=by), tables.judged_configs(deepest, by=by)
    healthy, sick, unjudged = [], {}, []
    for key, group in deepest.groupby(list(by)):
        name = f"{key[0]} + {key[1]}{variant_text(group.iloc[0])}"
        if key in flagged:
            judged_group = group[~group["pathology_init"].isin(["none", "n/a"])]
            sick.setdefault(_main_pathology(judged_group), []).append(name)
        elif key in judged:
            healthy.append(name)
        else:
            unjudged.append(name)
    total = len(healthy) + sum(len(v) for v in sick.values())
    noun = "settings" if "variant" in by else "pairs"   # with variants, a pair has several settings
    text = (f"At depth {depth} the diagnosis finds no pathology at initialization for {len(healthy)} of {total} "
            f"activation × init {noun}" + (f" ({listing(healthy, 12)})" if healthy else ""))
    if sick:
        text += "; " + "; ".join(f"{name}: {listing(pairs, 12)}" for name, pairs in sorted(sick.items()))
    text += f" (a {noun[:-1]} counts as flagged when at least half of its judged runs are)"
    if unjudged:
        text += (f"; no verdict for {listing(unjudged, 12)}: no run of "
                 + (f"this {noun[:-1]}" if len(unjudged) == 1 else f"these {noun}") + " has a probe at initialization")
    return text + "."


def pathology_observations(runs):
    """Sentences on the pathology x trainability table: how often flagged and unflagged runs train."""
    if not _judged(runs) or "trainability" not in runs:
        return []
    verdict = runs[runs["trainability"] != "n/a"]  # a run without a verdict did not train or stall
    flagged = verdict[~verdict["pathology_init"].isin(["none", "n/a"])]
    clean = verdict[verdict["pathology_init"] == "none"]
    sentences = []
    for label, group in (("flagged at initialization", flagged), ("without a flag at initialization", clean)):
        if group.empty:
            continue
        trained = group[group["trainability"] == "trained"]
        text = f"Of the {len(group)} runs {label}, {len(trained)} trained"
        if label.startswith("flagged") and not trained.empty:
            by_optimizer = trained["optimizer"].value_counts()
            text += " (" + ", ".join(f"{count} with {name}" for name, count in by_optimizer.items()) + ")"
        sentences.append(text + ".")
    left_out = len(runs) - len(verdict)
    if left_out and sentences:
        sentences.append(f"{left_out} run(s) without a trainability verdict (not finished, or no scalars logged) "
                         "are left out of these counts.")
    return sentences


def healthy_up_to(by_depth):
    """The largest depth up to which every tested depth has |log10 ratio| below the
    healthy bound (None: not even the shallowest); ``by_depth`` is depth -> ratio."""
    reached = None
    for depth, value in sorted(by_depth.items()):
        if not (np.isfinite(value) and abs(value) < HEALTHY_LOG10_RATIO):
            break
        reached = depth
    return reached


def _per_layer_slope(depths, values):
    """Slope of log10 ratio against depth (log10 gain per added layer), NaN if < 2 depths."""
    depths, values = np.asarray(depths, np.float64), np.asarray(values, np.float64)
    keep = np.isfinite(values)
    if np.unique(depths[keep]).size < 2:
        return np.nan
    return float(np.polyfit(depths[keep], values[keep], 1)[0])


def ratio_vs_depth_observations(layer_stats, runs):
    """Per activation, the depth up to which each init (and variant) keeps the ratio within a factor
    10 and up to which the diagnosis finds no pathology at init; the configurations where the two
    disagree; and the steepest per-layer change of the ratio."""
    by = tables.with_variant(runs, ("activation", "init", "depth"))
    extra = list(by[3:])   # ["variant"] when runs differ in a param beyond the standard axes
    ratios = tables.config_ratio(tables.grad_ratio(layer_stats, runs, INIT), runs, by)
    if not np.isfinite(ratios["value"]).any():
        return ["No finite gradient ratios at initialization: nothing to compare."]
    max_depth = int(ratios["depth"].max())
    judged = _judged(runs)
    flagged = tables.flagged_configs(runs, by=by) if judged else set()
    with_verdict = tables.judged_configs(runs, by=by) if judged else set()
    sentences = []
    slopes, blind = [], []
    for activation, per_activation in ratios.groupby("activation"):
        parts = []
        for setting, per_init in per_activation.groupby(["init", *extra]):
            init, rest = setting[0], tuple(setting[1:])
            label = init + variant_text(per_init.iloc[0])

            def key(depth):
                return (activation, init, depth, *rest)
            by_depth = dict(zip(per_init["depth"].astype(int), per_init["value"]))
            parts.append(f"{label} {_up_to(healthy_up_to(by_depth))}"
                         + (f" / {_up_to(_clean_up_to(flagged, with_verdict, key, by_depth))}" if judged else ""))
            slopes.append((_per_layer_slope(per_init["depth"], per_init["value"]), activation, label))
            blind += [(activation, label, depth, key(depth)) for depth, value in by_depth.items()
                      if np.isfinite(value) and abs(value) < HEALTHY_LOG10_RATIO and key(depth) in flagged]
        heading = (f"{activation}, the largest depth up to which every tested depth has |log10 ratio| < "
                   f"{HEALTHY_LOG10_RATIO:g}" + (" / no pathology at init by the diagnosis" if judged else ""))
        sentences.append(f"{heading} (tested up to {max_depth}): {listing(parts, 10)}.")
    if blind:
        names = []
        for activation, label, depth, config in blind:
            group = runs[np.logical_and.reduce([runs[name] == value for name, value in zip(by, config)])]
            raised = group[~group["pathology_init"].isin(["none", "n/a"])]
            names.append(f"{activation} + {label} at depth {depth} ({_main_pathology(raised)})")
        sentences.append(f"Inside the band but flagged by the diagnosis: {listing(names, 12)}. There the ratio "
                         "is blind: the weight gradient a₍ₗ₋₁₎ᵀ δₗ stays level while "
                         "the forward signal and the back-propagated error shrink together.")
    slopes = [entry for entry in slopes if np.isfinite(entry[0])]
    if slopes:
        slope, activation, label = max(slopes, key=lambda entry: abs(entry[0]))
        sentences.append(f"The ratio changes fastest with depth for {activation} + {label}: each added layer "
                         f"multiplies it by about {pow10(slope)} (fit over depths up to {max_depth}).")
    return sentences


def _up_to(reached):
    return "none" if reached is None else str(reached)


def _clean_up_to(flagged, judged, key, by_depth):
    """The largest depth up to which every tested depth of a setting (``key(depth)``: its configuration
    at that depth) is judged at init and not flagged."""
    reached = None
    for depth in sorted(by_depth):
        if key(depth) in flagged or key(depth) not in judged:
            break
        reached = depth
    return reached


def grad_final_observations(layer_stats, runs):
    """How the layer-1 / layer-L gradient ratio changed between init and the end."""
    both = pd.DataFrame({"init": tables.grad_ratio(layer_stats, runs, INIT),
                         "final": tables.grad_ratio(layer_stats, runs, FINAL)})
    both = both[np.isfinite(both["init"]) & np.isfinite(both["final"])]
    if both.empty:
        return ["No run has finite gradient ratios both at initialization and at its last logged step."]
    sentences = [f"Across {len(both)} runs, the median |log10 ratio| (layer 1 over layer L) goes from "
                 f"{both['init'].abs().median():.2f} at initialization to {both['final'].abs().median():.2f} "
                 "at the last logged step."]
    change = (both["final"] - both["init"]).abs()
    run_id = change.idxmax()
    run = runs[runs["run_id"] == run_id].iloc[0]
    sentences.append(f"The largest change is for {config_name(run, with_optimizer=True)}: from "
                     f"{pow10(both.loc[run_id, 'init'])} to {pow10(both.loc[run_id, 'final'])}.")
    return sentences


def _profile_extremes(layer_stats, runs, stat, when, top, bottom, description):
    """Sentences on the most and least extreme log10(stat at top / stat at bottom)
    at the largest depth; ``description`` names the ratio."""
    by = ("activation", "init", "depth") if when == INIT else ("activation", "init", "depth", "optimizer")
    ratios = _config_ratios(layer_stats, runs, stat, when, top, bottom, by)
    if ratios.empty:
        return [f"No finite positive {stat} at the compared layers: nothing to compare."]
    depth, ranked = _extremes_at_max_depth(ratios)
    worst, best = ranked.iloc[0], ranked.iloc[-1]
    label = (lambda row: f"{row['activation']} + {row['init']}" +
             (f" with {row['optimizer']}" if "optimizer" in row else "") + variant_text(row))
    sentence = (f"At depth {depth} ({'initialization' if when == INIT else 'last logged step'}), {description} "
                f"is {pow10(worst['value'])}{spread_text(worst, runs)} for {label(worst)} (the largest departure from 1)")
    if len(ranked) > 1:
        sentence += f" and {pow10(best['value'])}{spread_text(best, runs)} for {label(best)} (the best preserved)"
    return [sentence + "."]


def act_var_observations(layer_stats, runs, when=INIT):
    return _profile_extremes(layer_stats, runs, "act_var", when, "last_hidden", "first",
                             "the activation variance of the last hidden layer relative to layer 1")


def delta_ms_observations(layer_stats, runs, when=INIT):
    return _profile_extremes(layer_stats, runs, "delta_ms", when, "first", "output",
                             "the mean square back-propagated error at layer 1 relative to the output layer")


def heatmap_observations(layer_stats, runs, optimizer=None):
    """For the runs the heatmaps show: the largest change of the gradient ratio over
    training, and which of them diverged."""
    optimizer, shown = selection.heatmap_runs(runs, optimizer)
    if shown.empty:
        return ["No runs to show."]
    start = tables.grad_ratio(layer_stats, shown, INIT)
    end = tables.grad_ratio(layer_stats, shown, FINAL)
    last = tables.last_steps(layer_stats[layer_stats["run_id"].isin(shown["run_id"])])
    change = (end - start).abs().dropna()
    sentences = []
    if not change.empty:
        run_id = change.idxmax()
        sentences.append(f"With {optimizer}, the layer-1 / layer-L gradient ratio changes most for "
                         f"{config_name(shown.set_index('run_id').loc[run_id])}: from {pow10(start[run_id])} at step 0 to "
                         f"{pow10(end[run_id])} at step {int(last[run_id])}.")
    else:
        sentences.append("No shown run has a finite gradient ratio both at step 0 and at its last step.")
    diverged = shown[shown["outcome"] == "diverged"]
    if not diverged.empty:
        names = [f"{config_name(row)} (step {int(row['diverged_step'])})" if np.isfinite(row["diverged_step"])
                 else config_name(row) for _, row in diverged.iterrows()]
        sentences.append(f"{len(diverged)} of the {len(shown)} networks shown diverged: {listing(names)}.")
    return sentences


def mean_final_accuracy(group):
    """(mean acc/val over runs that did not diverge, number diverged, number of runs)."""
    is_diverged = group["outcome"] == "diverged"
    values = group.loc[~is_diverged, "acc/val"].to_numpy(np.float64)
    values = values[np.isfinite(values)]
    return (values.mean() if values.size else np.nan), int(is_diverged.sum()), len(group)


def _optimizer_scores(group):
    """({optimizer: mean final acc/val}, [sentence part per optimizer]) for one slice; with variants
    (tables.with_variant) one entry per optimizer and variant, "sgd (optimizer.lr=50)"."""
    parts, scores = [], {}
    for key, per_optimizer in group.groupby(list(tables.with_variant(group, ("optimizer",)))):
        optimizer = key[0] + variant_text(per_optimizer.iloc[0])
        accuracy, n_diverged, n_runs = mean_final_accuracy(per_optimizer)
        if n_diverged == n_runs:
            parts.append(f"{optimizer} diverged")
            continue
        text = f"{optimizer} {accuracy:.2f}" if np.isfinite(accuracy) else f"{optimizer} n/a"
        parts.append(text + (f" ({n_diverged}/{n_runs} diverged)" if n_diverged else ""))
        if np.isfinite(accuracy):
            scores[optimizer] = accuracy
    return scores, parts


def optimizer_summary(runs, init=None):
    """One sentence: which optimizer reaches the highest final validation accuracy at
    the largest depth for how many activations (ties within ACCURACY_TIE counted
    apart), or None with fewer than two optimizers to compare."""
    init, setup = selection.curves_setup(runs, init)
    winners = []
    for _, group in setup.values():
        scores, _ = _optimizer_scores(group)
        if len(scores) > 1:
            ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
            winners.append(ranked[0][0] if ranked[0][1] - ranked[1][1] >= ACCURACY_TIE else None)
    if not winners:
        return None
    leaders = pd.Series([winner for winner in winners if winner is not None], dtype="str").value_counts()
    ties = winners.count(None)
    if leaders.empty:
        return (f"At the largest depth, with {init} init, the optimizers' final validation accuracies are within "
                f"{ACCURACY_TIE:g} of each other for all {len(winners)} activations.")
    tie_text = f" ({ties} tied within {ACCURACY_TIE:g})" if ties else ""
    return (f"At the largest depth, with {init} init, {leaders.index[0]} has the highest final validation "
            f"accuracy for {leaders.iloc[0]} of {len(winners)} activations{tie_text}.")


def curves_observations(runs, init=None):
    """Final validation accuracy per optimizer at the largest depth, per activation,
    and which optimizer wins how often."""
    init, setup = selection.curves_setup(runs, init)
    if not setup:
        return ["No runs to compare."]
    sentences = []
    for activation, (depth, group) in sorted(setup.items()):
        _, parts = _optimizer_scores(group)
        sentences.append(f"{activation} at depth {depth} ({init}), final validation accuracy: {listing(parts, 10)}.")
    summary = optimizer_summary(runs, init)
    return sentences + ([summary] if summary else [])


def saturation_observations(layer_stats, runs, run_id=None):
    """For the run of the saturation figure: the top hidden layer's saturation and mean
    at init and at the end, and the most saturated / most dead layers at the end."""
    run = selection.saturation_run(runs, run_id)
    if run is None:
        return ["No runs to show."]
    depth = int(run["depth"])
    rows = layer_stats[(layer_stats["run_id"] == run["run_id"]) & (layer_stats["layer"] <= depth)]
    rows = _finite_rows(rows)
    stats = rows.pivot_table(index=["step", "layer"], columns="stat", values="value", aggfunc="first")
    if stats.empty or "saturation" not in stats or "act_mean" not in stats:
        return [f"No saturation or activation statistics for {config_name(run, True)}."]
    steps = stats.index.get_level_values("step")
    first, last = int(steps.min()), int(steps.max())
    name = config_name(run, with_optimizer=True)
    sentences = []
    if (first, depth) in stats.index and (last, depth) in stats.index:
        top_start, top_end = stats.loc[(first, depth)], stats.loc[(last, depth)]
        sentences.append(f"In {name}, the saturated fraction of the top hidden layer (layer {depth}) goes from "
                         f"{top_start['saturation']:.2f} at step {first} to {top_end['saturation']:.2f} at step "
                         f"{last}, and its mean activation from {top_start['act_mean']:.2f} to "
                         f"{top_end['act_mean']:.2f}.")
    at_end = stats.loc[last]
    saturation = at_end["saturation"].dropna()
    if saturation.empty:
        return sentences
    if saturation.max() < NEGLIGIBLE_FRACTION:
        sentences.append(f"At step {last} every hidden layer has a saturated fraction below {NEGLIGIBLE_FRACTION:g}.")
        return sentences
    most = saturation.idxmax()
    sentence = f"At step {last} the most saturated layer is layer {most} ({saturation[most]:.2f})"
    dead = at_end["dead_frac"].dropna() if "dead_frac" in at_end else pd.Series(dtype="float64")
    if not dead.empty:
        sentence += f"; the largest dead-unit fraction is {dead.max():.2f} (layer {dead.idxmax()})"
    sentences.append(sentence + ".")
    return sentences


def histogram_observations(histograms, runs, activation=None, depth=None, inits=None):
    """For each init of the histogram figure: how the spread of the errors and of the
    activations changes from the last hidden layer down to layer 1."""
    activation, depth, chosen = selection.histogram_setup(runs, histograms, activation, depth, inits)
    if not chosen:
        return ["No run has histograms at step 0."]
    spreads = tables.histogram_std(histograms[(histograms["step"] == 0)
                                              & histograms["run_id"].isin(chosen.values())])
    sentences = []
    for init, run_id in chosen.items():
        spread = spreads[spreads["run_id"] == run_id].set_index(["kind", "layer"])["std"]
        parts = []
        for kind, label in (("delta", "back-propagated errors"), ("act", "activations")):
            if (kind, 1) in spread.index and (kind, depth) in spread.index:
                ratio = tables.safe_log10(spread[(kind, 1)]) - tables.safe_log10(spread[(kind, depth)])
                if np.isfinite(ratio):
                    parts.append(f"{pow10(ratio)} for the {label}")
        if parts:
            sentences.append(f"{activation} + {init}, depth {depth}: relative to layer {depth}, the std at layer 1 "
                             f"is {listing(parts)}.")
        else:
            sentences.append(f"{activation} + {init}, depth {depth}: no usable histograms at layers 1 and {depth}.")
    return sentences


def outcome_observations(runs):
    """How many runs diverged (and which), the best and worst final accuracy, and the
    mean accuracy per optimizer."""
    if runs.empty:
        return ["No runs."]
    multiple_seeds = runs["seed"].nunique() > 1
    diverged = runs[runs["outcome"] == "diverged"]
    sentences = []
    if diverged.empty:
        sentences.append(f"None of the {len(runs)} runs diverged.")
    else:
        names = [config_name(row, with_optimizer=True, with_seed=multiple_seeds) for _, row in diverged.iterrows()]
        sentences.append(f"{len(diverged)} of {len(runs)} runs diverged: {listing(names)}.")
    unfinished = runs[runs["status"] != "FINISHED"]
    if not unfinished.empty:
        counts = unfinished["status"].value_counts()
        sentences.append(f"{len(unfinished)} run(s) did not finish ("
                         + ", ".join(f"{count} {status}" for status, count in counts.items()) + ").")
    best_worst = best_and_worst(runs)
    if best_worst:
        sentences.append(best_worst)
    completed = _finite_rows(runs[runs["outcome"] != "diverged"], "acc/val")
    if completed["optimizer"].nunique() > 1:
        means = completed.groupby("optimizer")["acc/val"].mean().sort_values(ascending=False)
        sentences.append("Mean final validation accuracy by optimizer (runs that did not diverge): "
                         + ", ".join(f"{name} {value:.2f}" for name, value in means.items()) + ".")
    return sentences


def best_and_worst(runs):
    """The best and the worst final validation accuracy among runs that did not
    diverge, with how many runs share each value; None without such runs."""
    completed = _finite_rows(runs[runs["outcome"] != "diverged"], "acc/val")
    if completed.empty:
        return None
    multiple_seeds = runs["seed"].nunique() > 1

    def described(row):
        others = int((completed["acc/val"].round(3) == round(row["acc/val"], 3)).sum()) - 1
        return config_name(row, True, multiple_seeds) + (f", and {others} more run(s)" if others else "")
    best = completed.loc[completed["acc/val"].idxmax()]
    worst = completed.loc[completed["acc/val"].idxmin()]
    return (f"Best final validation accuracy: {best['acc/val']:.3f} ({described(best)}); worst among runs that "
            f"did not diverge: {worst['acc/val']:.3f} ({described(worst)}).")
