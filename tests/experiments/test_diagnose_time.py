"""experiments.diagnose_time: the flags through time and the trainability of a regression, on
arrays built here with known answers."""
import numpy as np
import pytest

from experiments import diagnose_time
from nncore import diagnosis


def _decay(T, rate):
    """delta_ms_t = exp(-rate (T - t)): ln(delta_t / delta_T) = -rate (T - t)."""
    return np.exp(-rate * (T - np.arange(1, T + 1)))[None, :]


def test_vanishing_steps_are_more_than_six_time_scales_before_the_last():
    T = 20
    flags = diagnose_time.flags_through_time(_decay(T, 1.0), np.zeros((1, T)))
    # ln ratio = -(T - t): below -6 for t < T - 6 (t = 1..13), not at t = 14 (exactly -6) and after
    expected = np.arange(1, T + 1) < T - diagnosis.DEPTH_SCALES
    np.testing.assert_array_equal(flags["vanishing"][0], expected)
    assert not flags["exploding"].any() and not flags["saturated"].any()


def test_exploding_steps_and_overflow():
    T = 10
    delta = _decay(T, -2.0)          # grows back in time: ln ratio = 2 (T - t)
    delta[0, 0] = np.inf             # overflow at t = 1
    flags = diagnose_time.flags_through_time(delta, np.zeros((1, T)))
    # 2 (T - t) > 6 for t < 7; t = 1 is not finite: exploding too, and never vanishing
    np.testing.assert_array_equal(flags["exploding"][0], np.arange(1, T + 1) < 7)
    assert not flags["vanishing"].any()


def test_reference_is_the_last_step_with_a_positive_error_and_each_layer_has_its_own():
    T = 8
    delta = np.vstack([_decay(T, 2.0)[0], _decay(T, 0.1)[0]])
    delta[0, -1] = 0.0               # layer 1's last step carries no error: its reference is t = T - 1
    flags = diagnose_time.flags_through_time(delta, np.zeros((2, T)))
    # layer 1: ln(delta_t / delta_(T-1)) = -2 (T - 1 - t) < -6 for t < T - 4, and the zero error at
    # t = T has vanished entirely (as a zero in nncore.diagnosis); layer 2 changes by at most e^-0.7
    t = np.arange(1, T + 1)
    np.testing.assert_array_equal(flags["vanishing"][0], (t < T - 4) | (t == T))
    assert not flags["vanishing"][1].any()


def test_saturated_above_the_mlp_threshold():
    sat = np.array([[0.5, diagnosis.SATURATED, 0.95, 1.0]])
    flags = diagnose_time.flags_through_time(np.ones((1, 4)), sat)
    np.testing.assert_array_equal(flags["saturated"][0], [False, False, True, True])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(layers, T\) arrays of one shape"):
        diagnose_time.flags_through_time(np.ones(5), np.ones(5))


@pytest.mark.parametrize("diverged, mse, verdict", [
    (True, 0.001, "diverged"), (False, 0.0099, "trained"), (False, 0.0101, "stalled"), (False, 0.166, "stalled"),
    (False, float("nan"), "n/a"),
])
def test_regression_trainability_against_the_adding_baseline(diverged, mse, verdict):
    # adding's baseline 1/6: trained below 0.06 / 6 = 0.01
    assert diagnose_time.regression_trainability(diverged, mse, 1 / 6) == verdict
