"""nncore.diagnosis on constructed statistics: every flag firing and not firing, the textbook
healthy cases, the trap case (flat first-to-last gradient ratio while both signals vanish),
and the trainability margins on both sides; the flags through time of a recurrent network."""
import math

import numpy as np
import pytest

from nncore import RNN
from nncore import diagnosis as dg

DEPTH = 10           # hidden layers; L = 11 layers with the output
STEPS, LR, LOSS = 345, 0.05, 2.3


def healthy(depth=DEPTH):
    """Statistics of a well-propagating network: flat error and gradient profiles."""
    n = depth + 1
    stats = {"grad_norm": np.full(n, 1.0), "weight_norm": np.full(n, 8.0), "delta_ms": np.full(n, 0.01),
             "saturation": np.full(n, 0.05), "dead_frac": np.zeros(n), "unit_spread": np.full(n, 1.6)}
    stats["weight_norm"][-1], stats["delta_ms"][-1], stats["saturation"][-1] = 4.0, 0.09, 0.0
    return stats


def raised(stats, flag, loss=LOSS, steps=STEPS, lr=LR, **kwargs):
    """The hidden layers (1-based) that carry ``flag``."""
    return [int(l) + 1 for l in np.flatnonzero(dg.diagnose(stats, loss, steps, lr, **kwargs)[flag])]


def test_healthy_statistics_raise_no_flag():
    flags = dg.diagnose(healthy(), LOSS, STEPS, LR)
    assert set(flags) == set(dg.FLAGS)
    assert all(values.shape == (DEPTH,) and not values.any() for values in flags.values())
    assert dg.flag_set(flags) == "none"


def test_he_relu_half_inactive_and_45_percent_dead_units_is_healthy():
    # He/ReLU at depth 20, width 64: saturation 0.44-0.62 by design, some layers 45% dead, trains.
    stats = healthy(20)
    rng = np.random.default_rng(0)
    stats["saturation"][:-1] = rng.uniform(0.44, 0.62, 20)
    stats["dead_frac"][:-1] = np.linspace(0.0, 0.45, 20)
    stats["delta_ms"][:-1] = 0.013 * np.exp(rng.normal(0.0, 0.5, 20))   # finite-width scatter
    assert dg.flag_set(dg.diagnose(stats, LOSS, STEPS, LR)) == "none"


@pytest.mark.parametrize("ln_ratio, fires", [(-6.5, True), (-5.5, False)])
def test_vanishing_error_toward_the_input(ln_ratio, fires):
    stats = healthy()
    # the error shrinks geometrically from the top hidden layer (10) to layer 1
    stats["delta_ms"][:-1] = 0.01 * np.exp(ln_ratio * (DEPTH - np.arange(1, DEPTH + 1)) / (DEPTH - 1))
    assert raised(stats, "vanishing") == ([1] if fires else [])
    assert raised(stats, "exploding") == []


@pytest.mark.parametrize("ln_ratio, fires", [(-6.5, True), (-5.5, False)])
def test_vanishing_relative_gradient_toward_the_input(ln_ratio, fires):
    stats = healthy()
    # relative gradient ratio r_1 / r_top = e^(ln_ratio / 2): mean square ratio e^ln_ratio
    stats["grad_norm"][0] = np.exp(ln_ratio / 2)
    assert raised(stats, "vanishing") == ([1] if fires else [])


def test_the_trap_flat_ratio_while_both_signals_vanish_is_vanishing():
    # ReLU + uniform at depth 50: forward signal and backward error shrink together, so the
    # weight gradient is flat (first-to-last ratio 1) and tiny in every layer.
    depth = 50
    stats = healthy(depth)
    stats["grad_norm"][:] = 3e-21
    stats["delta_ms"] = 0.09 * 6.0 ** -np.arange(depth, -1, -1.0)     # x6 smaller per layer
    assert stats["grad_norm"][0] / stats["grad_norm"][-1] == 1.0
    assert raised(stats, "vanishing") == list(range(1, depth + 1))
    # only the floor sees it when the error profile is flat as well
    stats["delta_ms"][:] = 0.01
    assert raised(stats, "vanishing") == list(range(1, depth + 1))
    assert raised(stats, "vanishing", optimizer="adam", lr=1e-3, fan=np.full(depth + 1, 4096.0)) == \
        list(range(1, depth + 1))


def test_the_floor_is_relative_to_the_loss_left():
    stats = healthy()
    stats["grad_norm"][:] = 0.01          # 345 * 0.05 * 1e-4 = 1.7e-3 of loss reduction
    assert raised(stats, "vanishing", loss=2.3) == list(range(1, DEPTH + 1))   # < 1% of 2.3
    assert raised(stats, "vanishing", loss=1e-3) == []                       # converged: > 1% of 1e-3
    assert raised(stats, "vanishing", loss=np.nan) == []                     # no loss: no floor
    assert raised(stats, "vanishing", loss=2.3, steps=40000) == []          # a longer run moves it


def test_adaptive_rules_scale_small_gradients_up():
    stats = healthy()
    stats["grad_norm"][:] = 0.01
    fan = np.full(DEPTH + 1, 4096.0)
    assert raised(stats, "vanishing", optimizer="adam", lr=1e-3, fan=fan) == []
    stats["grad_norm"][:] = 1e-9 * 64       # rms entry 1e-9, below adam's eps
    assert raised(stats, "vanishing", optimizer="adam", lr=1e-3, fan=fan) == list(range(1, DEPTH + 1))
    with pytest.raises(ValueError, match="fan"):
        dg.diagnose(stats, LOSS, STEPS, 1e-3, optimizer="adam")


@pytest.mark.parametrize("ln_ratio, fires", [(6.5, True), (5.5, False)])
def test_exploding_error_toward_the_input(ln_ratio, fires):
    stats = healthy()
    stats["delta_ms"][0] = 0.01 * np.exp(ln_ratio)
    assert raised(stats, "exploding") == ([1] if fires else [])
    assert raised(stats, "vanishing") == []


@pytest.mark.parametrize("step_change, fires", [(1.1, True), (0.9, False)])
def test_exploding_step(step_change, fires):
    stats = healthy()
    stats["grad_norm"][:] = stats["weight_norm"] * step_change / LR   # one step moves W_l by this share
    assert raised(stats, "exploding") == (list(range(1, DEPTH + 1)) if fires else [])


def test_non_finite_statistics_are_exploding():
    stats = healthy()
    stats["delta_ms"][2] = np.inf
    assert raised(stats, "exploding") == [3]
    assert raised(stats, "vanishing") == []
    stats["delta_ms"][2] = np.nan
    assert raised(stats, "exploding") == [3]


@pytest.mark.parametrize("flag, stat, above, below", [
    ("saturated", "saturation", 0.95, 0.85),
    ("dead", "dead_frac", 0.95, 0.45),
])
def test_saturated_and_dead(flag, stat, above, below):
    stats = healthy()
    stats[stat][4] = above
    assert raised(stats, flag) == [5]
    stats[stat][4] = below
    assert raised(stats, flag) == []


def test_symmetric_units():
    stats = healthy()
    stats["unit_spread"][:-1] = 0.0
    assert raised(stats, "symmetric") == list(range(1, DEPTH + 1))
    stats["unit_spread"][:-1] = 1e-3
    assert raised(stats, "symmetric") == []


def test_without_unit_spread_no_symmetric_flag():
    stats = healthy()
    del stats["unit_spread"]
    assert dg.flag_set(dg.diagnose(stats, LOSS, STEPS, LR)) == "none"


def test_only_hidden_layers_are_flagged():
    stats = healthy()
    stats["dead_frac"][-1] = 1.0
    stats["saturation"][-1] = 1.0
    assert dg.flag_set(dg.diagnose(stats, LOSS, STEPS, LR)) == "none"


def test_flag_set_is_sorted_and_comma_separated():
    flags = {flag: np.zeros(3, bool) for flag in dg.FLAGS}
    flags["vanishing"][1] = flags["dead"][0] = flags["saturated"][2] = True
    assert dg.flag_set(flags) == "dead,saturated,vanishing"


def test_bad_input_names_the_problem():
    stats = healthy()
    del stats["dead_frac"]
    with pytest.raises(ValueError, match="dead_frac"):
        dg.diagnose(stats, LOSS, STEPS, LR)
    stats = healthy()
    stats["saturation"] = stats["saturation"][:-1]
    with pytest.raises(ValueError, match="saturation"):
        dg.diagnose(stats, LOSS, STEPS, LR)
    with pytest.raises(ValueError, match="lr"):
        dg.diagnose(healthy(), LOSS, STEPS, 0.0)
    with pytest.raises(ValueError, match="steps"):
        dg.diagnose(healthy(), LOSS, -1, LR)


MAJORITY = 0.1
MARGIN = MAJORITY + dg.STALL_ACCURACY * (1 - MAJORITY)   # 0.19


@pytest.mark.parametrize("accuracy, verdict", [(MARGIN - 1e-3, "stalled"), (MARGIN + 1e-3, "trained"),
                                               (MAJORITY, "stalled"), (0.9, "trained")])
def test_trainability_accuracy_margin(accuracy, verdict):
    assert dg.trainability(False, accuracy, MAJORITY, 2.3, 0.5) == verdict


@pytest.mark.parametrize("fall, verdict", [(0.09, "stalled"), (0.11, "trained")])
def test_trainability_loss_fall(fall, verdict):
    assert dg.trainability(False, 0.9, MAJORITY, 2.3, 2.3 * (1 - fall)) == verdict
    assert dg.trainability(False, np.nan, np.nan, 2.3, 2.3 * (1 - fall)) == verdict


def test_trainability_diverged_wins():
    assert dg.trainability(True, 0.95, MAJORITY, 2.3, 0.1) == "diverged"


def test_majority_rate():
    assert dg.majority_rate([0, 1, 1, 2]) == 0.5
    with pytest.raises(ValueError):
        dg.majority_rate([])


@pytest.mark.parametrize("stat", ["delta_ms", "grad_norm"])
def test_zero_top_layer_takes_the_next_layer_as_reference(stat):
    """A residual net whose top branch is dead has delta_ms (and grad_norm) exactly 0 at the top
    hidden layer while the skip path carries a normal error below: ratios to that 0 would be
    infinite and flag every healthy layer exploding. The reference is the next layer down."""
    stats = healthy()
    stats[stat][DEPTH - 1] = 0.0
    assert raised(stats, "exploding") == []
    assert raised(stats, "vanishing") == [DEPTH]  # the dead top layer itself
    stats[stat][: DEPTH - 2] *= np.exp(-8.0)  # a real shrink below the reference (layer 9) is seen
    assert raised(stats, "vanishing") == [*range(1, DEPTH - 1), DEPTH]


def test_zero_reference_in_a_residual_net():
    """The same through the network: a He/ReLU residual net with its top branch switched off."""
    from nncore import MLP
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(128, 16)), rng.integers(0, 10, 128)
    net = MLP(16, [32] * 6, 10, activation="relu", init="he_normal", residual=True, residual_scale=0.5, seed=1)
    net.biases[5][:] = -1e3  # every unit of the top hidden layer inactive on every example
    stats = net.probe(X, y)
    assert stats["delta_ms"][5] == 0.0 and np.all(stats["delta_ms"][:5] > 1e-3)
    flags = dg.diagnose(stats, net.probe_loss, steps=1000, lr=0.01)
    assert not flags["exploding"].any()
    assert flags["dead"][5] and not flags["dead"][:5].any()


@pytest.mark.parametrize("lr", [None, "0.1", [0.1], 0.0, -1.0, float("nan")])
def test_effective_lr_rejects_bad_lr(lr):
    with pytest.raises(ValueError, match="lr must be"):
        dg.effective_lr(lr)


# ------------------------------------------------------------ through time (RNN.probe's (K, T) stats)
def _time_stats(delta, saturation=None, dead=None):
    delta = np.atleast_2d(np.asarray(delta, dtype=float))
    zeros = np.zeros_like(delta)
    return {"delta_ms": delta, "saturation": zeros if saturation is None else np.atleast_2d(saturation),
            "dead_frac": zeros if dead is None else np.atleast_2d(dead)}


def test_through_time_flags_relative_to_the_last_step():
    e = math.exp(dg.DEPTH_SCALES)
    flags = dg.diagnose_through_time(_time_stats([1.0 / (2 * e), 1.0 / (0.5 * e), 1.0, 2 * e, 1.0],
                                         saturation=[0, 0, dg.SATURATED + 0.01, 0, 0], dead=[0, 0, 0, dg.DEAD + 0.01, 0]))
    assert flags["vanishing"].tolist() == [[True, False, False, False, False]]
    assert flags["exploding"].tolist() == [[False, False, False, True, False]]
    assert flags["saturated"].tolist() == [[False, False, True, False, False]]
    assert flags["dead"].tolist() == [[False, False, False, True, False]]
    assert dg.flag_set(flags) == "dead,exploding,saturated,vanishing"


def test_non_finite_steps_explode_and_a_zero_last_step_falls_back():
    flags = dg.diagnose_through_time(_time_stats([[np.inf, 1.0, 1e-9, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    # step T's delta_ms is 0: the reference is step 3's 1e-9, so step 2's 1.0 explodes and step T vanishes
    assert flags["exploding"][0].tolist() == [True, True, False, False]
    assert flags["vanishing"][0].tolist() == [False, False, False, True]
    assert not flags["vanishing"][1].any() and not flags["exploding"][1].any()


def test_a_vanishing_tanh_rnn_at_init_is_flagged_far_from_the_last_step():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 40, 4)), rng.integers(0, 2, size=32)
    net = RNN(4, 64, 2, init="normal", init_params={"sigma_w": 0.5})  # per-step ratio ~0.33
    flags = dg.diagnose_through_time(net.probe(X, y))
    assert flags["vanishing"][0, :30].all() and not flags["vanishing"][0, -3:].any()
    assert not flags["exploding"].any()


def test_bad_time_stats():
    with pytest.raises(ValueError, match="stats lack saturation"):
        dg.diagnose_through_time({"delta_ms": np.ones((1, 3)), "dead_frac": np.ones((1, 3))})
    # dead_frac is optional (runs logged before it existed): no step is dead without it
    assert not dg.diagnose_through_time({"delta_ms": np.ones((1, 3)), "saturation": np.ones((1, 3))})["dead"].any()
    with pytest.raises(ValueError, match=r"must have shape \(1, 3\) like delta_ms"):
        dg.diagnose_through_time({"delta_ms": np.ones((1, 3)), "saturation": np.ones(3), "dead_frac": np.ones((1, 3))})
