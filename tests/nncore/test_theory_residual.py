"""nncore.theory_residual against a Monte Carlo of random residual networks written here in plain
NumPy (forward and a manual backward, Gaussian weights), never against the theory's own code."""
import math

import numpy as np
import pytest

from nncore import activations, theory, theory_residual

N_IN, N_OUT = 64, 10


ALPHA = 0.2  # the leaky_relu slope of these networks (not its default)


def _act(name):
    """The activation under test: slope ALPHA where it takes one (leaky_relu), else its defaults."""
    return activations.get(name, **({"alpha": ALPHA} if "alpha" in activations.REGISTRY[name].params else {}))


_MC_CACHE = {}


def residual_mc(ref, name, sw2, s, depth, width, batch, seeds, norm=None, eps=1e-5):
    """Seed averages of per-layer act_ms, act_mean, act_var, preact_var and delta_ms / delta_ms[L].

    a_1 = phi(u_1), a_l = a_(l-1) + s phi(u_l) (l >= 2), u = LN(z) or z, z = a W (zero biases);
    the output error is N(0, 1), independent of the forward pass; inputs have mean square 1 per row.
    phi and phi' are conftest's references (``ref``), leaky_relu with slope ALPHA.
    """
    key = (name, sw2, s, depth, width, batch, seeds, norm, eps)
    if key in _MC_CACHE:
        return _MC_CACHE[key]
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        x = rng.standard_normal((batch, N_IN))
        x /= np.sqrt(np.mean(x * x, axis=1, keepdims=True))
        sizes = [N_IN] + [width] * depth + [N_OUT]
        Ws = [rng.standard_normal((i, o)) * math.sqrt(sw2 / i) for i, o in zip(sizes[:-1], sizes[1:])]
        a, cache, fwd = x, [], {"act_ms": [], "act_mean": [], "act_var": [], "preact_var": []}
        for l, W in enumerate(Ws[:-1]):
            z = a @ W
            if norm == "layer":
                sd = np.sqrt(z.var(axis=1, keepdims=True) + eps)
                u = (z - z.mean(axis=1, keepdims=True)) / sd
            else:
                u, sd = z, None
            h, d = ref.phi(name, u, ALPHA), ref.dphi(name, u, ALPHA)
            a = h if l == 0 else a + s * h
            cache.append((u, sd, d))
            for key, val in (("act_ms", np.mean(a * a)), ("act_mean", a.mean()), ("act_var", a.var()),
                             ("preact_var", z.var())):
                fwd[key].append(val)
        e = rng.standard_normal((batch, N_OUT))
        delta = [np.mean(e * e)]
        g = e @ Ws[-1].T                                     # d loss / d a_(L-1)
        for l in range(depth - 1, -1, -1):
            u, sd, d = cache[l]
            du = d * g * (s if l > 0 else 1.0)
            if norm == "layer":                              # LayerNorm backward, per row
                du = (du - du.mean(axis=1, keepdims=True) - u * (du * u).mean(axis=1, keepdims=True)) / sd
            delta.append(np.mean(du * du))
            if l > 0:
                g = g + du @ Ws[l].T                         # identity path + branch
        delta = np.array(delta[::-1])
        rows.append({**{k: np.array(v) for k, v in fwd.items()}, "delta_ms": delta / delta[-1]})
    _MC_CACHE[key] = {k: np.mean([r[k] for r in rows], axis=0) for k in rows[0]}
    return _MC_CACHE[key]


def _predict(name, sw2, s, depth, width, norm=None):
    return theory_residual.predict([N_IN] + [width] * depth + [N_OUT], _act(name), "normal", 1.0,
                                   residual_scale=s, norm=norm, init_params={"sigma_w": math.sqrt(sw2)})


def _geo_rate(profile, lo, hi):
    """Geometric mean of profile[l] / profile[l+1] over lo <= l < hi."""
    return (profile[lo] / profile[hi]) ** (1.0 / (hi - lo))


DEPTH = 8
CASES = [
    # name, sigma_w^2, s, norm, width, seeds, relative tolerances (forward, delta profile); the
    # unit-scale relu stack fluctuates most from seed to seed (ln p_L has a std of ~0.15 here)
    ("relu", 2.0, 1.0, None, 512, 4, (0.1, 0.2)),          # He, unit scale: the forward explosion
    ("relu", 2.0, 1 / math.sqrt(DEPTH), None, 256, 4, (0.06, 0.08)),
    ("leaky_relu", 2.0, 0.5, None, 256, 4, (0.06, 0.1)),
    ("tanh", 1.0, 1.0, None, 256, 4, (0.06, 0.08)),
    ("sigmoid", 1.0, 1.0, None, 256, 4, (0.06, 0.1)),
    ("relu", 2.0, 1.0, "layer", 256, 4, (0.06, 0.1)),
    ("tanh", 1.0, 1.0, "layer", 256, 4, (0.06, 0.1)),
    ("sigmoid", 1.0, 1.0, "layer", 256, 4, (0.06, 0.1)),
]


@pytest.mark.parametrize("name, sw2, s, norm, width, seeds, tols", CASES)
def test_profiles_match_monte_carlo(ref, name, sw2, s, norm, width, seeds, tols):
    fwd, tol = tols
    mc = residual_mc(ref, name, sw2, s, DEPTH, width, batch=64, seeds=seeds, norm=norm)
    th = _predict(name, sw2, s, DEPTH, width, norm)
    hidden = slice(0, DEPTH)
    # forward: second moment, mean, variance of a_l, variance of z_l (incl. the output layer)
    np.testing.assert_allclose(mc["act_ms"], th["act_ms"][hidden], rtol=fwd)
    # act_var = p - m^2 is a difference of large numbers where the mean dominates (sigmoid: m_8 ~ 4,
    # var ~ 0.35); its finite-width error, O(p/n) from the a_(l-1,i) W_ii term of z_(l,i), is
    # judged relative to p
    assert np.all(np.abs(mc["act_var"] - th["act_var"][hidden]) <= fwd * th["act_ms"][hidden])
    assert np.all(np.abs(mc["act_var"] - th["act_var"][hidden]) <= max(fwd, 0.1) * th["act_var"][hidden])
    # z_(l,i) has a per-unit mean sum_j m W_ji over the batch; when m dominates (sigmoid), the pooled
    # variance of z is a chi-square average over n units: relative seed noise sqrt(2 / (n seeds))
    np.testing.assert_allclose(mc["preact_var"], th["preact_var"][hidden],
                               rtol=max(fwd, 3 * math.sqrt(2 / (width * seeds))))
    if name != "tanh":  # tanh's mean is 0: only its absolute size can be checked
        np.testing.assert_allclose(mc["act_mean"], th["act_mean"][hidden], rtol=fwd)
    else:
        assert np.all(np.abs(mc["act_mean"]) < 0.05 * np.sqrt(th["act_ms"][hidden]))
    # backward: the error profile relative to the output layer, and its per-layer growth over
    # the residual layers 2..L-1 (finite width adds O(depth/width): see the width test below)
    np.testing.assert_allclose(mc["delta_ms"], th["delta_ms"], rtol=tol)
    assert _geo_rate(mc["delta_ms"], 1, DEPTH - 1) == pytest.approx(_geo_rate(th["delta_ms"], 1, DEPTH - 1), rel=0.03)


def test_relu_unit_scale_backward_excess_shrinks_with_width(ref):
    """At fixed depth the MC's excess over the error profile (the mean-direction mode described in
    the module docstring, seeded at O(1/n)) shrinks as the width grows."""
    th = _predict("relu", 2.0, 1.0, DEPTH, 128)
    excess = [residual_mc(ref, "relu", 2.0, 1.0, DEPTH, n, batch=32, seeds=4)["delta_ms"][0] / th["delta_ms"][0] - 1
              for n in (128, 512)]
    assert excess[1] < 0.6 * excess[0]


def test_cross_term_is_needed(ref):
    """A recursion without the mean cross term (p_l = p_(l-1) + s^2 M2) misses the sigmoid stack's
    measured second moment by far: the Monte Carlo above tells the two theories apart."""
    mc = residual_mc(ref, "sigmoid", 1.0, 1.0, DEPTH, 256, batch=64, seeds=4)
    p = theory.moments("sigmoid", 1.0)[1]
    for _ in range(DEPTH - 1):
        p += theory.moments("sigmoid", p)[1]
    assert p < 0.7 * mc["act_ms"][-1]


def test_closed_form_relu_recursion():
    """relu, He, s = 1: q = 2 p, m' = m + sqrt(q/(2 pi)), p' = p + 2 m sqrt(q/(2 pi)) + q/2,
    and the error grows by exactly 1 + s^2 sigma_w^2 / 2 = 2 per residual layer."""
    th = theory_residual.predict([N_IN] + [64] * 5 + [N_OUT], "relu", "he_normal", 0.7)
    m, p = 0.0, 0.7
    for l in range(5):
        q = 2.0 * p
        assert th["preact_var"][l] == pytest.approx(q, rel=1e-14)
        m, p = (math.sqrt(q / (2 * math.pi)), q / 2) if l == 0 else (
            m + math.sqrt(q / (2 * math.pi)), p + 2 * m * math.sqrt(q / (2 * math.pi)) + q / 2)
        assert th["act_mean"][l] == pytest.approx(m, rel=1e-14)
        assert th["act_ms"][l] == pytest.approx(p, rel=1e-14)
    np.testing.assert_allclose(th["chi"][1:4], 2.0, rtol=1e-14)
    assert theory_residual.branch_gain("relu", 3.0, 2.0, residual_scale=1.0) == 2.0
    assert theory_residual.branch_gain("relu", 3.0, 2.0, residual_scale=0.5) == 1.25


def test_bad_input():
    with pytest.raises(ValueError, match="residual_scale"):
        _predict("relu", 2.0, 0.0, 3, 16)
    with pytest.raises(ValueError, match="equal hidden widths"):
        theory_residual.predict([4, 8, 16, 2], "relu", "he_normal", 1.0)
    with pytest.raises(ValueError, match="norm"):
        theory_residual.predict([4, 8, 8, 2], "relu", "he_normal", 1.0, norm="batch")
    with pytest.raises(ValueError, match="unknown activation"):
        theory_residual.predict([4, 8, 8, 2], "swish", "he_normal", 1.0)
