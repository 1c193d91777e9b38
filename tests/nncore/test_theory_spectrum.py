"""nncore.theory_spectrum against a Monte Carlo of random networks written here: square layers of
width 256, the Jacobian J = D_L W_L ... D_1 W_1 multiplied out in column form from its definition,
the eigenvalues of J J^T of several networks and inputs pooled. Finite width adds O(L/n): the
tolerances leave room for it at L = 4 (L/n = 1.6%) and for the sampling error of a heavy-tailed
spectrum's variance."""
import math

import numpy as np
import pytest

from nncore import theory, theory_spectrum as ts

pytestmark = pytest.mark.usefixtures("single_thread_blas")

N, DEPTH, NETS = 256, 4, 6


def monte_carlo(phi, dphi, weights, sigma_w2, sigma_b2, input_ms, depth=DEPTH, n=N, nets=NETS, seed=0):
    """(mean, variance) of the eigenvalues of J J^T over ``nets`` random networks, one input each."""
    rng = np.random.default_rng(seed)
    eig = []
    for _ in range(nets):
        a = rng.normal(size=n)
        a *= math.sqrt(input_ms / np.mean(a * a))
        J = np.eye(n)
        for _ in range(depth):
            if weights == "iid":
                W = rng.normal(0.0, math.sqrt(sigma_w2 / n), size=(n, n))
            else:  # Haar orthogonal, scaled
                Q, R = np.linalg.qr(rng.normal(size=(n, n)))
                W = math.sqrt(sigma_w2) * Q * np.sign(np.diag(R))
            z = W @ a + rng.normal(0.0, math.sqrt(sigma_b2), size=n)
            a, d = phi(z), dphi(z)
            J = (d[:, None] * W) @ J
        eig.append(np.linalg.eigvalsh(J @ J.T))
    eig = np.concatenate(eig)
    return eig.mean(), eig.var()


LINEAR = (lambda z: z, lambda z: np.ones_like(z))
RELU = (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float))
TANH = (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2)


@pytest.mark.parametrize("name, fns, weights, sigma_w2, want_var", [
    ("identity", LINEAR, "iid", 1.0, DEPTH),         # L (mu2/mu1^2 - 1 - s1) = L (1 - 1 + 1)
    ("identity", LINEAR, "orthogonal", 1.0, 0.0),    # an orthogonal product: every singular value 1
    ("relu", RELU, "iid", 2.0, 2 * DEPTH),           # mu1 = mu2 = 1/2: L (2 - 1 + 1)
    ("relu", RELU, "orthogonal", 2.0, DEPTH),        # L (2 - 1 + 0)
])
def test_piecewise_linear_at_criticality(name, fns, weights, sigma_w2, want_var):
    mean, var = ts.spectrum_moments(name, sigma_w2, 1.0, weights, depth=DEPTH)
    assert mean == pytest.approx(1.0) and var == pytest.approx(want_var, abs=1e-12)
    mc_mean, mc_var = monte_carlo(*fns, weights, sigma_w2, 0.0, 1.0)
    assert mc_mean == pytest.approx(mean, rel=0.12)
    assert mc_var == pytest.approx(var, rel=0.2, abs=1e-9)


@pytest.mark.parametrize("weights", ["iid", "orthogonal"])
@pytest.mark.parametrize("sigma_b2", [0.01, 0.3])
def test_tanh_at_criticality_and_the_fixed_point(weights, sigma_b2):
    sigma_w2 = theory.critical_sigma_w2("tanh", sigma_b2)
    q_star = theory.fixed_point("tanh", sigma_w2, sigma_b2)
    input_ms = (q_star - sigma_b2) / sigma_w2  # so that layer 1's pre-activations sit at q* too
    mean, var = ts.spectrum_moments("tanh", sigma_w2, q_star, weights, depth=DEPTH)
    assert mean == pytest.approx(1.0, rel=1e-6)
    assert var == pytest.approx(ts.critical_variance("tanh", DEPTH, weights, q_star), rel=1e-6)
    mc_mean, mc_var = monte_carlo(*TANH, weights, sigma_w2, sigma_b2, input_ms, nets=12)
    assert mc_mean == pytest.approx(mean, rel=0.1)
    assert mc_var == pytest.approx(var, rel=0.2, abs=0.02)


def test_off_criticality_the_mean_is_chi_to_the_depth():
    mean, var = ts.spectrum_moments("tanh", 1.5, 0.5, "iid", depth=3)
    # one layer at q = 0.5: inputs of mean square q / sigma_w^2, no bias
    mean1, var1 = ts.spectrum_moments("tanh", 1.5, 0.5, "iid", depth=1)
    mc1 = monte_carlo(*TANH, "iid", 1.5, 0.0, 0.5 / 1.5, depth=1, nets=8)
    assert mc1[0] == pytest.approx(mean1, rel=0.05) and mc1[1] == pytest.approx(var1, rel=0.15)
    assert mean == pytest.approx(mean1 ** 3) and var == pytest.approx(mean1 ** 6 * 3 * var1 / mean1 ** 2)


def test_derivative_moments_closed_forms_and_quadrature():
    rng = np.random.default_rng(1)
    g = rng.normal(size=2_000_000)
    assert ts.derivative_moments("relu", 3.0) == (0.5, 0.5)
    assert ts.derivative_moments("leaky_relu", 1.0) == pytest.approx((0.5 * (1 + 0.01 ** 2), 0.5 * (1 + 0.01 ** 4)))
    d2 = (1 - np.tanh(np.sqrt(2.0) * g) ** 2) ** 2
    mu1, mu2 = ts.derivative_moments("tanh", 2.0)
    assert mu1 == pytest.approx(d2.mean(), rel=3e-3) and mu2 == pytest.approx((d2 * d2).mean(), rel=5e-3)
    assert ts.derivative_moments("sigmoid", 0.0) == (1 / 16, 1 / 256)


def test_predict_draws_no_line_outside_the_theory():
    sizes = [8, 8, 8, 3]
    assert ts.predict(sizes, "tanh", "orthogonal", 1.0) is not None
    assert ts.predict([8, 16, 16, 3], "tanh", "orthogonal", 1.0) is None   # a rectangular first layer
    assert ts.predict(sizes, "tanh", "orthogonal", 1.0, norm="layer") is None
    assert ts.predict(sizes, "tanh", "orthogonal", 1.0, residual=True) is None
    assert ts.predict(sizes, "tanh", "constant", 1.0) is None
    assert ts.ensemble("he_uniform") == "iid" and ts.ensemble("orthogonal") == "orthogonal"
    with pytest.raises(ValueError, match="unknown weight ensemble"):
        ts.spectrum_moments("tanh", 1.0, 1.0, "gaussian", depth=2)
