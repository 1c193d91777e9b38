"""analysis.study_isometry on hand-made runs: network labels, where the theory line is drawn, and the
trainability sentences computed from matched runs."""
import math

import numpy as np
import pandas as pd

from analysis import study_isometry as si
from experiments import record


def _run(**kw):
    run = {"run_id": "r", "activation": "tanh", "init": "orthogonal", "depth": 4, "width": 8, "n_in": 8.0,
           "n_out": 3.0, "sigma_w": math.sqrt(1.1891895852345442), "gain": math.sqrt(1.1891895852345442),
           "sigma_b": math.sqrt(0.001), "norm": "none", "residual_scale": np.nan, "alpha": np.nan}
    run.update(kw)
    return pd.Series(run)


def test_network_labels_name_the_fixed_point():
    assert si.network_label(_run()) == "tanh q*=0.107"
    assert si.network_label(_run(activation="identity")) == "linear"
    assert si.network_label(_run(activation="relu")) == "relu"


def test_no_prediction_where_the_theory_does_not_apply():
    assert si.predicted(_run(), 0.5) is not None
    assert si.predicted(_run(norm="layer"), 0.5) is None
    assert si.predicted(_run(residual_scale=1.0), 0.5) is None
    assert si.predicted(_run(n_in=64.0), 0.5) is None  # a rectangular first layer


def test_trainability_sentences_count_matched_pairs():
    table = pd.DataFrame([
        {"run_id": f"{init}{depth}", "network": "tanh q*=0.107", "init": init, "depth": depth, "width": 8, "seed": 0}
        for init in ("normal", "orthogonal") for depth in (2, 8)])
    final = {"normal2": 1.0, "orthogonal2": 0.9, "normal8": 2.0, "orthogonal8": 1.0}
    scalars = pd.DataFrame([{"run_id": r, "step": s, "name": record.LOSS_TRAIN, "value": v + (1 - s)}
                            for r, v in final.items() for s in (0, 1)])
    lines = si.trainability_sentences(scalars, table)
    assert lines[0] == ("- Orthogonal tanh ended with a lower training loss than Gaussian tanh in 2 of 2 matched "
                        "(network, depth, seed) pairs.")
    assert "depth 8: final training loss 2.000 (Gaussian) vs 1.000 (orthogonal)" in lines[1]
    assert "+0.100 at depth 2 and +1.000 at depth 8: it grows with depth" in lines[2]
