"""Which runs a single-configuration figure shows: the rules the figure sections share.

Several figures show one run or one slice of the grid. Each section's preferences (in
analysis.sections) name the setting of the paper its figure imitates; when the sweep does not hold
it, the first value in sorted order is used instead, and the figure title says
which was shown. These are choices of what to display, never findings.
"""
# Plain SGD passes the raw gradient into the weights; adaptive rules rescale it
# per parameter, which hides the layer-to-layer imbalance the heatmaps are about.
PREFERRED_OPTIMIZER = "sgd"


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


