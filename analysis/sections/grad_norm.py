"""Figures 1 and 6: the weight-gradient norm of every layer, at initialization and at each run's
last logged step, with what they show (the largest and smallest first-to-last layer ratios).
"""
import numpy as np
import pandas as pd

from .. import tables
from ..figures import layer_grid, styled
from ..observations import (config_name, config_ratios, extremes_at_max_depth, has_verdicts, listing, pow10,
                            spread_text, variant_text)
from ..tables import FINAL, HEALTHY_LOG10_RATIO, INIT
from .section import FigureSection, seed_caption


@styled
def fig_grad_norm_init(layer_stats, runs, theory=None):
    """Weight-gradient norm per layer at initialization (log y); rows = init,
    columns = activation, one line per depth. A straight sloped line on the log
    axis is the vanishing (rising toward the output) or exploding signature."""
    return layer_grid(layer_stats, runs, "grad_norm", INIT,
                       "Gradient norm per layer at initialization", theory)


@styled
def fig_grad_norm_final(layer_stats, runs):
    """As fig_grad_norm_init, at each run's last logged step; line style = optimizer."""
    return layer_grid(layer_stats, runs, "grad_norm", FINAL,
                       "Gradient norm per layer at the last logged step "
                       "(diverged runs: last finite probe)")


def grad_init_observations(layer_stats, runs):
    """The most extreme and the most balanced layer-1 / layer-L gradient ratio at init,
    at the largest depth, and how many configurations stay within a factor 10."""
    ratios = config_ratios(layer_stats, runs, "grad_norm", INIT, "first", "output")
    if ratios.empty:
        return ["No finite gradient norms at layers 1 and L at initialization: nothing to compare."]
    depth, ranked = extremes_at_max_depth(ratios)
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
        if has_verdicts(runs):
            by = tables.with_variant(runs, ("activation", "init", "depth"))
            flagged = tables.flagged_configs(runs, by=by)
            blind = [f"{row['activation']} + {row['init']}{variant_text(row)}" for _, row in within.iterrows()
                     if tuple(row[name] for name in by) in flagged]
            sentence += (f", but the ratio is no health test: the diagnosis flags {len(blind)} of them at "
                         f"initialization ({listing(blind, 12)})" if blind else
                         ", and the diagnosis flags none of them at initialization")
        sentences.append(sentence + ".")
    return sentences


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


INIT_SECTION = FigureSection(
    "grad_norm_init", "Gradients at initialization", "Gradient norm per layer at initialization",
    lambda f, theory: fig_grad_norm_init(f.layer_stats, f.runs, theory),
    lambda f: ("Frobenius norm of the weight gradient of each layer at step 0 (log scale), one line "
               "per depth; rows are initializations, columns activations. A line that rises toward "
               "the output layer means vanishing gradients, one that falls means exploding."
               + seed_caption(f)),
    lambda f: grad_init_observations(f.layer_stats, f.runs))

FINAL_SECTION = FigureSection(
    "grad_norm_final", "During and after training", "Gradient norm per layer at the end of training",
    lambda f, theory: fig_grad_norm_final(f.layer_stats, f.runs),
    lambda f: ("As the first figure, at each run's last logged step (for a diverged run, its last "
               "finite probe); line style distinguishes optimizers." + seed_caption(f)),
    lambda f: grad_final_observations(f.layer_stats, f.runs))
