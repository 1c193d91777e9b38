"""nncore.diagnosis on constructed statistics and real networks at init: every flag firing and
not firing, the textbook healthy cases, the trap case (flat first-to-last gradient ratio while
both signals vanish), the budget's effective steps against each rule's textbook formula, the
trainability margins on both sides, and the flags through time of a recurrent network."""
import math

import numpy as np
import pytest

from nncore import MLP, RNN, optimizers
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


def raised(stats, flag):
    """The hidden layers (1-based) that carry network ``flag``."""
    return [int(l) + 1 for l in np.flatnonzero(dg.diagnose(stats)[flag])]


def frozen(stats, loss=LOSS, steps=STEPS, rule=None, fan=None):
    """The hidden layers (1-based) that the budget flags frozen (None: not judged)."""
    rule = optimizers.get("sgd", lr=LR) if rule is None else rule
    fan = np.full(len(stats["grad_norm"]), 4096.0) if fan is None else fan
    flags = dg.budget(stats, loss, steps, rule, fan)
    return None if flags is None else [int(l) + 1 for l in np.flatnonzero(flags["frozen"])]


def test_healthy_statistics_raise_no_flag():
    flags = dg.diagnose(healthy())
    assert set(flags) == set(dg.FLAGS)
    assert all(values.shape == (DEPTH,) and not values.any() for values in flags.values())
    assert dg.flag_set(flags) == "none"
    assert frozen(healthy()) == []


def test_he_relu_half_inactive_and_45_percent_dead_units_is_healthy():
    # He/ReLU at depth 20, width 64: saturation 0.44-0.62 by design, some layers 45% dead, trains.
    stats = healthy(20)
    rng = np.random.default_rng(0)
    stats["saturation"][:-1] = rng.uniform(0.44, 0.62, 20)
    stats["dead_frac"][:-1] = np.linspace(0.0, 0.45, 20)
    stats["delta_ms"][:-1] = 0.013 * np.exp(rng.normal(0.0, 0.5, 20))   # finite-width scatter
    assert dg.flag_set(dg.diagnose(stats)) == "none"


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
    assert raised(stats, "vanishing") == list(range(1, depth - 3))    # 4+ layers below the top: 6^4 > e^6
    # the budget sees every layer: no rule moves a gradient of 1e-21 by 1% of the loss
    fan = np.full(depth + 1, 4096.0)
    for rule in (optimizers.get("sgd", lr=LR), optimizers.get("adam", lr=1e-3), optimizers.get("adadelta"),
                 optimizers.get("adagrad", lr=0.01)):
        assert frozen(stats, rule=rule, fan=fan) == list(range(1, depth + 1)), rule


def test_the_trap_in_a_real_network_is_vanishing_whatever_the_optimizer():
    """ReLU + uniform at depth 50 (chi = 1/6 per layer) at init: vanishing from its profiles alone."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(128, 64)), rng.integers(0, 10, 128)
    stats = MLP(64, [64] * 50, 10, activation="relu", init="uniform", seed=0).probe(X, y)
    assert "vanishing" in dg.flag_set(dg.diagnose(stats)).split(",")


@pytest.mark.parametrize("activation, depth", [("relu", 20), ("leaky_relu", 10)])
def test_he_initialized_networks_at_init_are_healthy_without_a_budget(activation, depth):
    """train.epochs=0: the profiles say healthy, and with no optimizer step the budget is not
    judged (before, 0 steps counted as 1 and every layer read as vanishing)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(256, 64)), rng.integers(0, 10, 256)
    net = MLP(64, [64] * depth, 10, activation=activation, init="he_uniform", seed=0)
    stats = net.probe(X, y)
    assert dg.flag_set(dg.diagnose(stats)) == "none"
    fan = np.array([w.size for w in net.weights], dtype=float)
    assert dg.budget(stats, net.probe_loss, 0, optimizers.get("sgd", lr=0.05), fan) is None
    assert dg.flag_set(None) == dg.NOT_JUDGED == "n/a"


@pytest.mark.parametrize("share, fires", [(0.009, True), (0.011, False)])
def test_frozen_when_the_run_would_lower_the_loss_by_less_than_one_percent(share, fires):
    # sgd: the loss falls by steps * lr * ||dL/dW_l||^2 (first order); this share of the loss
    stats = healthy()
    stats["grad_norm"][:] = math.sqrt(share * LOSS / (STEPS * LR))
    assert frozen(stats) == (list(range(1, DEPTH + 1)) if fires else [])
    assert raised(stats, "vanishing") == []          # flat profiles: the network itself is healthy


def test_the_floor_is_relative_to_the_loss_left():
    stats = healthy()
    stats["grad_norm"][:] = 0.01          # 345 * 0.05 * 1e-4 = 1.7e-3 of loss reduction
    assert frozen(stats, loss=2.3) == list(range(1, DEPTH + 1))   # < 1% of 2.3
    assert frozen(stats, loss=1e-3) == []                       # converged: > 1% of 1e-3
    assert frozen(stats, steps=40000) == []                     # a longer run moves it
    assert frozen(stats, loss=np.nan) is None                   # no loss: not judged
    assert frozen(stats, steps=0) is None                       # no step: not judged


def test_adaptive_rules_scale_small_gradients_up():
    stats = healthy()
    stats["grad_norm"][:] = 0.01
    adam = optimizers.get("adam", lr=1e-3)
    assert frozen(stats, rule=adam) == []
    stats["grad_norm"][:] = 1e-9 * 64       # rms entry 1e-9, below adam's eps
    assert frozen(stats, rule=adam) == list(range(1, DEPTH + 1))
    with pytest.raises(ValueError, match="fan"):
        dg.budget(stats, LOSS, STEPS, adam, None)


def test_clipping_shrinks_the_step():
    stats = healthy()
    stats["grad_norm"][:] = 0.05   # sgd moves the loss by 345 * 0.05 * 0.0025 = 0.043 > 0.023
    assert frozen(stats) == []
    # clip_norm 0.01 of a total norm sqrt(11) * 0.05 = 0.166: a 17x smaller step
    assert frozen(stats, rule=optimizers.get("sgd", lr=LR, clip_norm=0.01)) == list(range(1, DEPTH + 1))


# ---- travel: each rule's distance under a constant gradient, against its textbook formula -----------
T = 300


def test_travel_sgd_and_momentum():
    g = np.array([0.5, 2e-3])
    assert dg.travel(optimizers.get("sgd", lr=0.05), g, T) == pytest.approx(T * 0.05 * g, rel=1e-12)
    # torch: buf_1 = g, buf_t = mu buf + g, so buf_t = g (1 - mu^t) / (1 - mu)
    mu = 0.9
    want = sum(0.01 * g * (1 - mu ** t) / (1 - mu) for t in range(1, T + 1))
    assert dg.travel(optimizers.get("momentum", lr=0.01), g, T) == pytest.approx(want, rel=1e-9)
    assert dg.travel(optimizers.get("momentum", lr=0.01), g, 20000) == pytest.approx(
        sum(0.01 * g * (1 - mu ** t) / (1 - mu) for t in range(1, 20001)), rel=1e-9)


def test_travel_adam():
    # bias-corrected moments of a constant gradient are exactly g and g^2: every step lr g / (|g| + eps)
    g = np.array([1.0, 1e-8, 1e-12])
    assert dg.travel(optimizers.get("adam", lr=1e-3), g, T) == pytest.approx(T * 1e-3 * g / (g + 1e-8), rel=1e-6)


def test_travel_adagrad_uses_its_own_eps():
    """torch.optim.Adagrad: sum_t = t g^2, step lr g / (sqrt(sum_t) + eps) with eps = 1e-10."""
    g = np.array([1.0, 1e-10])
    def textbook(eps):
        return sum(0.01 * g / (math.sqrt(t) * g + eps) for t in range(1, T + 1))
    got = dg.travel(optimizers.get("adagrad", lr=0.01), g, T)
    assert got == pytest.approx(textbook(1e-10), rel=1e-9)
    assert got[1] > 10 * textbook(1e-8)[1]       # the adaptive rules' 1e-8 would be 26x too small here
    assert dg.travel(optimizers.get("adagrad", lr=0.01, eps=1e-8), g, T) == pytest.approx(textbook(1e-8), rel=1e-9)


def test_travel_adadelta_has_no_lr_over_rms_form():
    """torch.optim.Adadelta (lr 1, rho 0.9, eps 1e-6): v = rho v + (1 - rho) g^2,
    d = sqrt(s + eps) / sqrt(v + eps) g, s = rho s + (1 - rho) d^2. Its first step is about
    sqrt(eps / (1 - rho)) = 3.2e-3 per entry whatever g, not lr / (|g| + eps) * g = 1."""
    g = np.array([1.0, 0.01])
    rho, eps = 0.9, 1e-6
    v, s, total, first = np.zeros(2), np.zeros(2), np.zeros(2), None
    for _ in range(T):
        v = rho * v + (1 - rho) * g * g
        d = np.sqrt(s + eps) / np.sqrt(v + eps) * g
        s = rho * s + (1 - rho) * d * d
        total += d
        first = d if first is None else first
    assert first[0] == pytest.approx(math.sqrt(eps / (1 - rho)), rel=1e-5)
    assert dg.travel(optimizers.get("adadelta"), g, 1) == pytest.approx(first, rel=1e-12)
    assert dg.travel(optimizers.get("adadelta"), g, T) == pytest.approx(total, rel=1e-9)
    assert np.all(total < 0.1 * T)                  # far from the lr / (rms + eps) model's T


def test_travel_with_no_steps_is_zero_and_bad_steps_are_refused():
    assert dg.travel(optimizers.get("sgd", lr=0.1), np.ones(3), 0).tolist() == [0.0, 0.0, 0.0]
    for steps in (-1, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            dg.travel(optimizers.get("sgd", lr=0.1), np.ones(3), steps)


@pytest.mark.parametrize("ln_ratio, fires", [(6.5, True), (5.5, False)])
def test_exploding_error_toward_the_input(ln_ratio, fires):
    stats = healthy()
    stats["delta_ms"][0] = 0.01 * np.exp(ln_ratio)
    assert raised(stats, "exploding") == ([1] if fires else [])
    assert raised(stats, "vanishing") == []


def test_a_large_step_is_not_a_property_of_the_network():
    stats = healthy()
    stats["grad_norm"][:] = stats["weight_norm"] * 2.0 / LR   # one sgd step would move W_l by twice its norm
    assert raised(stats, "exploding") == []


def test_non_finite_statistics_are_exploding():
    stats = healthy()
    stats["delta_ms"][2] = np.inf
    assert raised(stats, "exploding") == [3]
    assert raised(stats, "vanishing") == []
    assert 3 not in frozen(stats)
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
    assert dg.flag_set(dg.diagnose(stats)) == "none"


def test_only_hidden_layers_are_flagged():
    stats = healthy()
    stats["dead_frac"][-1] = 1.0
    stats["saturation"][-1] = 1.0
    stats["grad_norm"][-1] = 0.0
    assert dg.flag_set(dg.diagnose(stats)) == "none"
    assert frozen(stats) == []


def test_flag_set_is_sorted_and_comma_separated():
    flags = {flag: np.zeros(3, bool) for flag in dg.FLAGS}
    flags["vanishing"][1] = flags["dead"][0] = flags["saturated"][2] = True
    assert dg.flag_set(flags) == "dead,saturated,vanishing"


def test_bad_input_names_the_problem():
    stats = healthy()
    del stats["dead_frac"]
    with pytest.raises(ValueError, match="dead_frac"):
        dg.diagnose(stats)
    stats = healthy()
    stats["saturation"] = stats["saturation"][:-1]
    with pytest.raises(ValueError, match="saturation"):
        dg.diagnose(stats)
    with pytest.raises(ValueError, match="steps"):
        dg.budget(healthy(), LOSS, -1, optimizers.get("sgd", lr=LR), np.full(DEPTH + 1, 64.0))
    with pytest.raises(ValueError, match="fan"):
        dg.budget(healthy(), LOSS, STEPS, optimizers.get("sgd", lr=LR), np.full(DEPTH, 64.0))


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
    assert dg.trainability(True, 0.95, MAJORITY, 2.3, 0.1, steps=0) == "diverged"


def test_a_run_without_steps_is_not_judged():
    """train.epochs=0: a stalled-looking loss (it never moved) is no verdict; one step is judged."""
    assert dg.trainability(False, MAJORITY, MAJORITY, 2.3, 2.3, steps=0) == dg.NOT_JUDGED
    assert dg.trainability(False, MAJORITY, MAJORITY, 2.3, 2.3, steps=1) == "stalled"
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        dg.trainability(False, 0.9, MAJORITY, 2.3, 0.5, steps=-1)


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
    flags = dg.diagnose(stats)
    assert not flags["exploding"].any()
    assert flags["dead"][5] and not flags["dead"][:5].any()


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
