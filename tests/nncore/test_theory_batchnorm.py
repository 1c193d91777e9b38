"""nncore.theory_batchnorm against a Monte Carlo of random BatchNorm and LayerNorm networks written
here in plain NumPy (forward and a manual backward as torch defines the norms), and its closed
forms against numerical integration done here."""
import math

import numpy as np
import pytest

from nncore import activations, theory_batchnorm

ALPHA = 0.2  # leaky_relu slope used throughout (not its default): the theory must read the instance's
NAMES = tuple(sorted(activations.REGISTRY))


def _act(name):
    """The activation under test: slope ALPHA where it takes one (leaky_relu), else its defaults."""
    return activations.get(name, **({"alpha": ALPHA} if "alpha" in activations.REGISTRY[name].params else {}))


@pytest.fixture
def phi(ref):
    """(phi(u), phi'(u)) from conftest's textbook formulas, leaky_relu with slope ALPHA."""
    return lambda name, u: (ref.phi(name, u, ALPHA), ref.dphi(name, u, ALPHA))


# BatchNorm: a large batch (the theory is its limit) and inputs of dimension >= batch, so the batch's
# activations have full rank from layer 1 on; 2 seeds suffice (the rate's seed spread is ~0.3%).
# LayerNorm normalizes each example on its own: a small batch, but 6 seeds (per-seed spread ~1-3%:
# it does not remove each unit's random gain as BatchNorm does).
MC_SIZES = {"batch": {"batch": 512, "n_in": 512, "seeds": 2}, "layer": {"batch": 64, "n_in": 64, "seeds": 6}}
RATE_TOL = {"batch": 0.015, "layer": 0.03}


_MC_CACHE = {}


def norm_mc(ref, name, norm, sw2=1.0, depth=12, width=256, n_out=10, eps=1e-5):
    """Seed averages of per-layer preact_var, act_mean, act_var and delta_ms / delta_ms[L].

    z = a W (zero biases), u = Norm(z) with the biased variance and eps inside the square root,
    a = phi(u); the output error is N(0, 1), independent of the forward pass; inputs N(0, 1).
    """
    key = (name, norm, sw2, depth, width, n_out, eps)
    if key in _MC_CACHE:
        return _MC_CACHE[key]
    batch, n_in, seeds = MC_SIZES[norm]["batch"], MC_SIZES[norm]["n_in"], MC_SIZES[norm]["seeds"]
    axis = 0 if norm == "batch" else 1      # BatchNorm: per unit over the batch; LayerNorm: per row
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(2000 + seed)
        sizes = [n_in] + [width] * depth + [n_out]
        Ws = [rng.standard_normal((i, o)) * math.sqrt(sw2 / i) for i, o in zip(sizes[:-1], sizes[1:])]
        a, cache = rng.standard_normal((batch, n_in)), []
        fwd = {"preact_var": [], "act_mean": [], "act_var": []}
        for W in Ws[:-1]:
            z = a @ W
            sd = np.sqrt(z.var(axis=axis, keepdims=True) + eps)
            u = (z - z.mean(axis=axis, keepdims=True)) / sd
            a, d = ref.phi(name, u, ALPHA), ref.dphi(name, u, ALPHA)
            cache.append((u, sd, d))
            for key, val in (("preact_var", z.var()), ("act_mean", a.mean()), ("act_var", a.var())):
                fwd[key].append(val)
        e = rng.standard_normal((batch, n_out))
        delta, g = [np.mean(e * e)], e @ Ws[-1].T
        for l in range(depth - 1, -1, -1):
            u, sd, d = cache[l]
            du = d * g
            dz = (du - du.mean(axis=axis, keepdims=True) - u * (du * u).mean(axis=axis, keepdims=True)) / sd
            delta.append(np.mean(dz * dz))
            g = dz @ Ws[l].T
        delta = np.array(delta[::-1])
        rows.append({**{k: np.array(v) for k, v in fwd.items()}, "delta_ms": delta / delta[-1]})
    _MC_CACHE[key] = {k: np.mean([r[k] for r in rows], axis=0) for k in rows[0]}
    return _MC_CACHE[key]


def measured_rate(delta_ms, depth=12):
    """Per-layer growth of delta_ms toward the input, fitted on hidden layers 2..depth-1 (away
    from the input layer and from the unnormalized output layer)."""
    layers = np.arange(1, depth - 1)
    return math.exp(-np.polyfit(layers, np.log(delta_ms[layers]), 1)[0])


def _gauss_expect(f):
    """E[f(u)], u ~ N(0, 1), by Simpson's rule on each half line [-12, 0-] and [0+, 12] (the kinks
    of relu and softsign sit at 0; written here, not nncore's rule)."""
    total = 0.0
    for sign in (-1.0, 1.0):
        t = np.linspace(0.0, 12.0, 200001)
        t[0] = np.finfo(float).tiny                        # the one-sided limit at 0
        w = np.full(t.size, 2.0)
        w[1::2], w[0], w[-1] = 4.0, 1.0, 1.0
        total += (t[1] - t[0]) / 3 * np.sum(w * f(sign * t) * np.exp(-t * t / 2))
    return float(total / math.sqrt(2 * math.pi))


# ------------------------------------------------------------------------ closed forms
def test_relu_rate_is_pi_over_pi_minus_one():
    assert theory_batchnorm.batchnorm_rate("relu") == math.pi / (math.pi - 1)
    assert theory_batchnorm.batchnorm_rate("relu") == pytest.approx(1.4669, abs=1e-4)
    assert theory_batchnorm.layernorm_rate("relu") == 1.0
    assert theory_batchnorm.batchnorm_rate("identity") == 1.0


@pytest.mark.parametrize("name", NAMES)
def test_rates_against_numerical_integration(name, phi):
    m1 = _gauss_expect(lambda u: phi(name, u)[0])
    m2 = _gauss_expect(lambda u: phi(name, u)[0] ** 2)
    d2 = _gauss_expect(lambda u: phi(name, u)[1] ** 2)
    assert theory_batchnorm.batchnorm_rate(_act(name)) == pytest.approx(d2 / (m2 - m1 * m1), rel=1e-6)
    assert theory_batchnorm.layernorm_rate(_act(name)) == pytest.approx(d2 / m2, rel=1e-6)
    # Gaussian Poincare inequality: BatchNorm's gradients explode for every activation but the identity
    assert theory_batchnorm.batchnorm_rate(_act(name)) >= 1.0


# -------------------------------------------------------------------------- Monte Carlo
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("norm", ("batch", "layer"))
def test_rate_matches_monte_carlo(ref, name, norm):
    """The measured per-layer growth of the error (width 256) is within 1.5% (BatchNorm; its
    finite-size excess measured here is at most ~0.7%) or 3% (LayerNorm; seed noise) of the rate."""
    rate = (theory_batchnorm.batchnorm_rate if norm == "batch" else theory_batchnorm.layernorm_rate)
    assert measured_rate(norm_mc(ref, name, norm)["delta_ms"]) == pytest.approx(rate(_act(name)), rel=RATE_TOL[norm])


@pytest.mark.parametrize("name, norm, sw2", [("relu", "batch", 2.0), ("tanh", "batch", 1.0),
                                             ("sigmoid", "layer", 1.0), ("relu", "layer", 2.0)])
def test_profiles_match_monte_carlo(ref, name, norm, sw2):
    """Per-layer predict() against the Monte Carlo, the first and top layers included: forward
    statistics to 4% (the pooled variance of z carries each unit's random gain: 8%), and the
    error's per-layer ratio chi (delta_ms is their product; a finite-size excess of ~1% per layer
    compounds to ~15% over 12 layers, so the product is not compared)."""
    mc = norm_mc(ref, name, norm, sw2=sw2)
    th = theory_batchnorm.predict([MC_SIZES[norm]["n_in"]] + [256] * 12 + [10], _act(name), "normal", norm,
                                  input_ms=1.0, init_params={"sigma_w": math.sqrt(sw2)})
    hidden = slice(0, 12)
    np.testing.assert_allclose(mc["preact_var"], th["preact_var"][hidden], rtol=0.08)
    np.testing.assert_allclose(mc["act_var"], th["act_var"][hidden], rtol=0.04)
    np.testing.assert_allclose(mc["act_mean"], th["act_mean"][hidden], rtol=0.04, atol=0.01)
    # per-layer chi: BatchNorm to 4%, LayerNorm to 8% (seed noise, see MC_SIZES); the top layer's,
    # fed by 10 output units, to 10% (seed noise of ~5% with 2 seeds; 0.9% off with 8 seeds)
    chi = mc["delta_ms"][:-1] / mc["delta_ms"][1:]
    np.testing.assert_allclose(chi[:-1], th["chi"][:-2], rtol=0.04 if norm == "batch" else 0.08)
    assert chi[-1] == pytest.approx(th["chi"][-2], rel=0.1)


def test_rate_does_not_depend_on_sigma_w2(ref):
    """BatchNorm and LayerNorm are scale invariant: the same rate for any sigma_w^2."""
    for norm in ("batch", "layer"):
        chis = [theory_batchnorm.predict([16] + [32] * 6 + [4], "tanh", "normal", norm, 1.0,
                                         init_params={"sigma_w": sw})["chi"][2] for sw in (0.7, 1.4)]
        assert chis[0] == pytest.approx(chis[1], rel=1e-3)
    rates = [measured_rate(norm_mc(ref, "relu", "batch", sw2=sw2)["delta_ms"]) for sw2 in (1.0, 2.0)]
    assert rates[0] == pytest.approx(rates[1], rel=0.01)


def test_bad_input():
    with pytest.raises(ValueError, match="norm"):
        theory_batchnorm.predict([4, 8, 2], "relu", "he_normal", "group", 1.0)
    with pytest.raises(ValueError, match="unknown activation"):
        theory_batchnorm.batchnorm_rate("swish")
    with pytest.raises(ValueError, match="input_ms"):
        theory_batchnorm.predict([4, 8, 2], "relu", "he_normal", "batch", -1.0)
