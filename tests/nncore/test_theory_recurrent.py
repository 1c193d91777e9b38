"""nncore.theory_recurrent against a Monte Carlo of random Elman networks written here (NumPy,
not nncore's RNN): width 256, several seeds; the per-step ratio of the error's RMS against
sqrt(chi), the hidden pre-activation's second moment against q_t, the exact linear-orthogonal
law, and the cases without a theory."""
import math

import numpy as np
import pytest

from nncore import RNN, theory_recurrent as tr

pytestmark = pytest.mark.usefixtures("single_thread_blas")

WIDTH, N_IN, BATCH, T, SEEDS = 256, 32, 32, 40, (0, 1, 2)
PHI = {"tanh": (np.tanh, lambda a: 1.0 / np.cosh(a) ** 2),
       "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(float)),
       "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda a: np.exp(-a) / (1.0 + np.exp(-a)) ** 2)}


def monte_carlo(act, sigma_w, sigma_u, sigma_b, seed, W_hh=None):
    """(mean a_t^2 over batch and units, mean delta_t^2) for t = 1..T of one random network, with
    unit-variance inputs and the error delta_T ~ N(0, 1) entering at the last step."""
    phi, dphi = PHI[act]
    rng = np.random.default_rng(seed)
    W_ih = rng.normal(0.0, sigma_u / math.sqrt(N_IN), (N_IN, WIDTH))
    if W_hh is None:
        W_hh = rng.normal(0.0, sigma_w / math.sqrt(WIDTH), (WIDTH, WIDTH))
    b = rng.normal(0.0, sigma_b, WIDTH)
    X = rng.normal(size=(T, BATCH, N_IN))
    h, pre = np.zeros((BATCH, WIDTH)), []
    for t in range(T):
        a = X[t] @ W_ih + h @ W_hh + b
        pre.append(a)
        h = phi(a)
    delta = rng.normal(size=(BATCH, WIDTH))
    ms = [0.0] * T
    for t in range(T - 1, -1, -1):
        ms[t] = np.mean(delta ** 2)
        delta = (dphi(pre[t]) * delta) @ W_hh.T
    return np.array([np.mean(a ** 2) for a in pre]), np.array(ms)


# q's tolerance: at width 256 the activations with a non-zero mean (relu, sigmoid) deviate more
# (measured -4% and -5%; tanh within 1.1%): their mean meets the same column sums of the tied W_hh
# at every step, an O(1/sqrt(H)) effect that the mean field (H -> infinity) leaves out
@pytest.mark.parametrize("act,sigma_w,sigma_b,q_tol", [("tanh", 0.5, 0.0, 0.02), ("tanh", 1.5, 0.0, 0.02),
                                                       ("tanh", 3.0, 0.1, 0.02), ("relu", 1.0, 0.3, 0.07),
                                                       ("sigmoid", 4.0, 0.2, 0.07)])
def test_prediction_matches_monte_carlo(act, sigma_w, sigma_b, q_tol):
    pred = tr.predict("rnn", act, sigma_w, 1.0, sigma_b, 1.0, T)
    runs = [monte_carlo(act, sigma_w, 1.0, sigma_b, s) for s in SEEDS]
    q = np.mean([r[0] for r in runs], axis=0)
    np.testing.assert_allclose(q[:3], pred["q"][:3], rtol=0.05)  # the transient from q_1
    assert q[5:].mean() == pytest.approx(pred["q"][5:].mean(), rel=q_tol)
    # the per-step ratio of the error's RMS over the last 20 steps, geometric mean over seeds
    window = slice(T - 21, T)
    measured = np.exp(np.mean([np.log(r[1][window][0] / r[1][window][-1]) for r in runs]) / 40)
    predicted = math.sqrt(pred["delta_ms"][window][0] / pred["delta_ms"][window][-1]) ** (1 / 20)
    assert measured == pytest.approx(predicted, rel=0.025)  # measured: within 1.5%
    np.testing.assert_allclose(pred["delta_ms"][:-1] / pred["delta_ms"][1:], pred["chi"][1:], rtol=1e-12)
    assert pred["delta_ms"][-1] == 1.0


def test_the_issue_table_tanh_width_256():
    # issue 24, measured per-step ratio at T = 100 against sqrt(chi): sigma_w 0.5 -> 0.334, 2 -> 1.047
    for sigma_w, expected in ((0.5, 0.334), (1.0, 0.632), (2.0, 1.047), (3.0, 1.308)):
        chi = tr.predict("rnn", "tanh", sigma_w, 1.0, 0.0, 1.0, 100)["chi"][-1]
        assert math.sqrt(chi) == pytest.approx(expected, abs=6e-4)


def test_linear_orthogonal_is_exact():
    rho = 0.93
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(WIDTH, WIDTH)))
    _, ms = monte_carlo_linear(rho * Q, rng)
    np.testing.assert_allclose(ms / ms[-1], tr.linear_orthogonal(rho, T), rtol=1e-11)
    # the mean field says the same for identity with sigma_w = rho (entry variance rho^2 / H)
    np.testing.assert_allclose(tr.predict("rnn", "identity", rho, 1.0, 0.0, 1.0, T)["delta_ms"],
                               tr.linear_orthogonal(rho, T), rtol=1e-13)


def monte_carlo_linear(W_hh, rng):
    delta, ms = rng.normal(size=(BATCH, WIDTH)), []
    for _ in range(T):
        ms.append(np.mean(delta ** 2))
        delta = delta @ W_hh.T
    return None, np.array(ms[::-1])


def test_pytorch_default_init_sigmas_and_its_ratio():
    # the issue measured 0.59 per step for a tanh RNN at torch's default init, sqrt(1/3) = 0.577 predicted
    sw, su, sb = tr.sigmas(N_IN, WIDTH)
    assert sw ** 2 == pytest.approx(1 / 3) and su ** 2 == pytest.approx(N_IN / (3 * WIDTH))
    assert sb ** 2 == pytest.approx(2 / (3 * WIDTH))
    net = RNN(N_IN, WIDTH, 2)
    assert net.cells[0].params["W_hh"].var() * WIDTH == pytest.approx(sw ** 2, rel=0.02)
    # sqrt(1/3) = 0.577 is the limit of small q (tanh'(0) = 1); the input's variance lowers it
    quiet = tr.predict("rnn", "tanh", sw, su, sb, 0.0, 100)["chi"][-1]
    assert math.sqrt(quiet) == pytest.approx(math.sqrt(1 / 3), abs=3e-3)  # q* = O(sigma_b^2) > 0
    assert tr.predict("rnn", "tanh", sw, su, sb, 1.0, 100)["chi"][-1] < quiet
    assert tr.sigmas(8, 16, init="normal", init_params={"sigma_w": 1.5}, sigma_b=0.2) == pytest.approx((1.5, 1.5, 0.2))
    assert tr.sigmas(8, 16, recurrent_init="orthogonal", recurrent_params={"gain": 0.9})[0] == pytest.approx(0.9)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_no_line_for_gated_cells(cell):
    with pytest.raises(tr.NoTheory, match=f"no mean-field prediction of the {cell.upper()}'s error through time"):
        tr.predict(cell, "tanh", 1.0, 1.0, 0.0, 1.0, 10)
    with pytest.raises(tr.NoTheory, match="W_hh = gain I is not random"):
        tr.sigmas(4, 8, recurrent_init="identity")


@pytest.mark.parametrize("args,message", [
    (("elman", "tanh", 1.0, 1.0, 0.0, 1.0, 5), "unknown cell 'elman'"),
    (("rnn", "swish", 1.0, 1.0, 0.0, 1.0, 5), "unknown activation 'swish'"),
    (("rnn", "tanh", -1.0, 1.0, 0.0, 1.0, 5), "sigma_w must be >= 0.0"),
    (("rnn", "tanh", 1.0, 1.0, 0.0, "1", 5), "input_ms must be a number"),
    (("rnn", "tanh", 1.0, 1.0, 0.0, 1.0, 0), "T must be an integer >= 1"),
])
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        tr.predict(*args)
