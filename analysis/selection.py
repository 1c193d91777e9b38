"""Which runs a single-configuration figure shows.

Several figures show one run or one slice of the grid. The preferences below
name the setting of the paper each figure imitates; when the sweep does not hold
it, the first value in sorted order is used instead, and the figure title says
which was shown. These are choices of what to display, never findings.
"""
import pandas as pd

# Plain SGD passes the raw gradient into the weights; adaptive rules rescale it
# per parameter, which hides the layer-to-layer imbalance the heatmaps are about.
PREFERRED_OPTIMIZER = "sgd"
# Glorot & Bengio (2010) derived this initialization to keep variances depth-independent.
PREFERRED_CURVES_INIT = "xavier_uniform"
# Glorot & Bengio (2010) Fig. 2: sigmoid with the "standard" uniform initialization.
PREFERRED_SATURATION = ("sigmoid", "uniform")
# Glorot & Bengio (2010) Figs. 6-7: tanh, standard vs normalized initialization,
# five hidden layers.
PREFERRED_HISTOGRAM_ACTIVATION = "tanh"
PREFERRED_HISTOGRAM_INITS = ("uniform", "xavier_uniform")
PREFERRED_HISTOGRAM_DEPTH = 5


def prefer(available, preferred):
    """``preferred`` when it is among ``available``, else the first in sorted order
    (None when nothing is available)."""
    available = sorted(set(available))
    if not available:
        return None
    return preferred if preferred in available else available[0]


def first_run(runs):
    """The run with the smallest seed (then run id) of ``runs``, or None."""
    if runs.empty:
        return None
    return runs.sort_values(["seed", "run_id"]).iloc[0]


def heatmap_runs(runs, optimizer=None):
    """(optimizer, runs): the deepest run of each activation x init for one optimizer."""
    optimizer = optimizer or prefer(runs["optimizer"], PREFERRED_OPTIMIZER)
    chosen = runs[runs["optimizer"] == optimizer]
    picked = []
    for _, group in chosen.groupby(["activation", "init"]):
        picked.append(first_run(group[group["depth"] == group["depth"].max()]))
    frame = pd.DataFrame(picked) if picked else runs.iloc[0:0]
    return optimizer, frame.reset_index(drop=True)


def curves_setup(runs, init=None):
    """(init, {activation: (depth, runs)}): for each activation, the runs at the
    largest depth with ``init`` (default: the preferred init when present)."""
    init = init or prefer(runs["init"], PREFERRED_CURVES_INIT)
    chosen = runs[runs["init"] == init]
    setup = {}
    for activation, group in chosen.groupby("activation"):
        depth = int(group["depth"].max())
        setup[activation] = (depth, group[group["depth"] == depth])
    return init, setup


def middle_depth(depths):
    """The middle of the sorted distinct ``depths`` (the lower one of two middles)."""
    ordered = sorted(set(int(depth) for depth in depths))
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def saturation_run(runs, run_id=None):
    """The run shown by the saturation figure: ``run_id``, else the preferred
    activation + init at the middle depth with the preferred optimizer."""
    if run_id is not None:
        match = runs[runs["run_id"] == run_id]
        return None if match.empty else match.iloc[0]
    activation = prefer(runs["activation"], PREFERRED_SATURATION[0])
    candidates = runs[runs["activation"] == activation]
    init = prefer(candidates["init"], PREFERRED_SATURATION[1])
    candidates = candidates[candidates["init"] == init]
    candidates = candidates[candidates["depth"] == middle_depth(candidates["depth"])]
    optimizer = prefer(candidates["optimizer"], PREFERRED_OPTIMIZER)
    return first_run(candidates[candidates["optimizer"] == optimizer])


def histogram_setup(runs, histograms, activation=None, depth=None, inits=None):
    """(activation, depth, {init: run_id}) for the histogram figure: runs that have
    histograms at step 0, the preferred activation and pair of inits, and the
    depth closest to the preferred one that all the chosen inits share."""
    at_init = histograms.loc[histograms["step"] == 0, "run_id"].unique()  # not set(): iterating millions of rows
    candidates = runs[runs["run_id"].isin(at_init)]
    activation = activation or prefer(candidates["activation"], PREFERRED_HISTOGRAM_ACTIVATION)
    candidates = candidates[candidates["activation"] == activation]
    available = sorted(set(candidates["init"]))
    if inits is None:
        inits = [init for init in PREFERRED_HISTOGRAM_INITS if init in available]
        inits = inits if len(inits) == 2 else available[:2]
    candidates = candidates[candidates["init"].isin(inits)]
    shared = None
    for init in inits:
        depths = set(candidates.loc[candidates["init"] == init, "depth"])
        shared = depths if shared is None else shared & depths
    if not shared:
        return activation, None, {}
    depth = depth if depth in shared else min(shared, key=lambda d: (abs(d - PREFERRED_HISTOGRAM_DEPTH), d))
    chosen = {}
    for init in inits:
        group = candidates[(candidates["init"] == init) & (candidates["depth"] == depth)]
        optimizer = prefer(group["optimizer"], PREFERRED_OPTIMIZER)
        chosen[init] = first_run(group[group["optimizer"] == optimizer])["run_id"]
    return activation, int(depth), chosen
