"""The sentences of the report, computed from the data: the helpers the figure sections share
(naming configurations, ratios at the largest depth, spreads over seeds, powers of ten) and the
sentences that belong to no one figure (the diagnosis headline, the pathology table).

Each figure's ``*_observations`` function lives beside it in analysis.sections, reads the same
tables (and makes the same run choices) as the figure it describes, and returns a list of
sentences. Nothing here states a result that was not measured: when the data
cannot support a sentence, the function says what is missing instead.

Powers of ten are written in Unicode superscripts (``pow10``): 10⁻¹⁷·² is 10^-17.2.
"""
import numpy as np

from . import tables
from .tables import INIT


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


def finite_rows(frame, column="value"):
    return frame[np.isfinite(frame[column].to_numpy(np.float64))]


def config_ratios(layer_stats, runs, stat, when, top, bottom, by=("activation", "init", "depth")):
    """Median log10 ratio per configuration ``by`` (and variant, tables.with_variant; column value)
    and, with several seeds, its min and max over the configuration's runs (columns low, high)."""
    by = tables.with_variant(runs, by)
    ratios = tables.log10_layer_ratio(layer_stats, runs, stat, when, top, bottom)
    medians = tables.config_ratio(ratios, runs, by)
    frame = runs[["run_id", *by]].assign(value=runs["run_id"].map(ratios).to_numpy(np.float64))
    frame = frame[np.isfinite(frame["value"])]
    spread = frame.groupby(list(by), as_index=False)["value"].agg(low="min", high="max")
    return finite_rows(medians.merge(spread, on=list(by), how="left"))


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


def has_verdicts(runs, column="pathology_init"):
    return column in runs and not runs.empty


def extremes_at_max_depth(config_ratios):
    """(depth, rows at that depth sorted from most to least extreme |value|)."""
    depth = int(config_ratios["depth"].max())
    at_depth = config_ratios[config_ratios["depth"] == depth]
    order = at_depth["value"].abs().sort_values(ascending=False).index
    return depth, at_depth.loc[order]


def main_pathology(group, column="pathology_init"):
    """The most frequent tag of ``column`` among a configuration's runs."""
    return group[column].value_counts().index[0]


def diagnosis_headline(runs):
    """One sentence: at the largest depth, which activation x init pairs the diagnosis finds
    healthy at initialization, and how the others are flagged; None without a diagnosis."""
    if not has_verdicts(runs):
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
            sick.setdefault(main_pathology(judged_group), []).append(name)
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
    if not has_verdicts(runs) or "trainability" not in runs:
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


def profile_extremes(layer_stats, runs, stat, when, top, bottom, description):
    """Sentences on the most and least extreme log10(stat at top / stat at bottom)
    at the largest depth; ``description`` names the ratio."""
    by = ("activation", "init", "depth") if when == INIT else ("activation", "init", "depth", "optimizer")
    ratios = config_ratios(layer_stats, runs, stat, when, top, bottom, by)
    if ratios.empty:
        return [f"No finite positive {stat} at the compared layers: nothing to compare."]
    depth, ranked = extremes_at_max_depth(ratios)
    worst, best = ranked.iloc[0], ranked.iloc[-1]
    label = (lambda row: f"{row['activation']} + {row['init']}" +
             (f" with {row['optimizer']}" if "optimizer" in row else "") + variant_text(row))
    sentence = (f"At depth {depth} ({'initialization' if when == INIT else 'last logged step'}), {description} "
                f"is {pow10(worst['value'])}{spread_text(worst, runs)} for {label(worst)} (the largest departure from 1)")
    if len(ranked) > 1:
        sentence += f" and {pow10(best['value'])}{spread_text(best, runs)} for {label(best)} (the best preserved)"
    return [sentence + "."]


def mean_final_accuracy(group):
    """(mean acc/val over runs that did not diverge, number diverged, number of runs)."""
    is_diverged = group["outcome"] == "diverged"
    values = group.loc[~is_diverged, "acc/val"].to_numpy(np.float64)
    values = values[np.isfinite(values)]
    return (values.mean() if values.size else np.nan), int(is_diverged.sum()), len(group)


