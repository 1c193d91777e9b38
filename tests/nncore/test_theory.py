"""Tests of nncore.theory: closed forms, quadrature, fixed points, depth scales, and the
mean-field predictions against networks measured with ``MLP.probe`` at initialization."""
import math

import numpy as np
import pytest

from nncore import MLP, activations, initializers, theory
from nncore.rng import generator

# from the registry: bounded (finite sup phi^2, moments integrated) and closed-form (piecewise-linear)
BOUNDED = tuple(n for n, cls in sorted(activations.REGISTRY.items()) if cls.sup_square is not None)
PIECEWISE_LINEAR = tuple(n for n, cls in sorted(activations.REGISTRY.items()) if cls().gaussian_gains() is not None)


# --------------------------------------------------------------------------- sigma_w2
@pytest.mark.parametrize("fan_in, fan_out", [(300, 300), (200, 500), (500, 200)])
@pytest.mark.parametrize("init, params, expected", [
    ("uniform", {}, lambda i, o: 1 / 3),
    ("xavier_uniform", {}, lambda i, o: 2 * i / (i + o)),
    ("xavier_normal", {}, lambda i, o: 2 * i / (i + o)),
    ("he_uniform", {}, lambda i, o: 2.0),
    ("he_normal", {}, lambda i, o: 2.0),
    ("lecun_normal", {}, lambda i, o: 1.0),
    ("normal", {}, lambda i, o: 1.0),
    ("normal", {"sigma_w": 1.5}, lambda i, o: 2.25),
    ("orthogonal", {}, lambda i, o: i / max(i, o)),
    ("orthogonal", {"gain": 2.0}, lambda i, o: 4 * i / max(i, o)),
])
def test_sigma_w2_formula_and_drawn_weights(init, params, expected, fan_in, fan_out):
    sw2 = theory.sigma_w2(init, fan_in, fan_out, **params)
    assert sw2 == pytest.approx(expected(fan_in, fan_out), rel=1e-15)
    # the weights nncore actually draws: fan_in * mean(W^2) (>= 6e4 entries: ~0.6% noise)
    W = initializers.init_weights(init, generator(0, "init"), fan_in, fan_out, **params)
    assert fan_in * np.mean(W ** 2) == pytest.approx(sw2, rel=0.03)


def test_sigma_w2_ignores_other_params_and_rejects_bad_input():
    assert theory.sigma_w2("he_normal", 10, 10, gain=5.0, sigma_w=3.0) == 2.0
    with pytest.raises(ValueError, match="constant"):
        theory.sigma_w2("constant", 10, 10)
    with pytest.raises(ValueError, match="unknown initializer"):
        theory.sigma_w2("glorot", 10, 10)
    with pytest.raises(ValueError, match="fan_in"):
        theory.sigma_w2("uniform", 0, 10)
    with pytest.raises(ValueError, match="sigma_w"):
        theory.sigma_w2("normal", 10, 10, sigma_w=-1.0)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="valid: .*tanh"):
        theory.length_map("swish", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="valid"):
        theory.chi("gelu", 1.0, 1.0)


def test_activation_instance_accepted():
    leaky = activations.get("leaky_relu", alpha=0.2)
    assert theory.chi(leaky, 1.0, 2.0) == pytest.approx(2.0 * (1 + 0.2 ** 2) / 2, rel=1e-15)
    assert theory.chi("leaky_relu", 1.0, 2.0) == pytest.approx(2.0 * (1 + 0.01 ** 2) / 2, rel=1e-15)  # default
    assert theory.length_map(activations.get("tanh"), 0.7, 1.5, 0.1) == theory.length_map("tanh", 0.7, 1.5, 0.1)


def test_negative_or_nonfinite_q_rejected():
    for q in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="q must be"):
            theory.length_map("tanh", q, 1.0, 0.0)


# ------------------------------------------------------------------------ closed forms
Q_GRID = np.array([0.0, 1e-6, 0.3, 1.0, 2.5, 40.0, 1e6])


# E[phi^2]/q = E[phi'^2] of each closed-form activation, written out (the reference)
CLOSED_FORM_GAIN = {("relu", None): 0.5, ("leaky_relu", None): 0.5 * (1 + 0.01 ** 2),
                    ("leaky_relu", 0.2): 0.5 * (1 + 0.2 ** 2), ("identity", None): 1.0}


def _act(name, alpha):
    return activations.get(name) if alpha is None else activations.get(name, alpha=alpha)


def test_every_closed_form_activation_has_a_reference():
    assert {name for name, _ in CLOSED_FORM_GAIN} == set(PIECEWISE_LINEAR)


@pytest.mark.parametrize("activation, alpha", sorted(CLOSED_FORM_GAIN, key=str))
def test_closed_forms(activation, alpha):
    k = CLOSED_FORM_GAIN[activation, alpha]
    act = _act(activation, alpha)
    sw2, sb2 = 0.9, 0.3
    np.testing.assert_allclose(theory.length_map(act, Q_GRID, sw2, sb2), sw2 * k * Q_GRID + sb2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(theory.chi(act, Q_GRID, sw2), sw2 * k, rtol=1e-15)
    assert theory.fixed_point(act, sw2, sb2) == pytest.approx(sb2 / (1 - sw2 * k), rel=1e-15)
    assert theory.depth_scale(act, sw2, sb2) == pytest.approx(-1 / math.log(sw2 * k), rel=1e-15)
    assert theory.critical_sigma_w2(act, sb2) == pytest.approx(1 / k, rel=1e-15)


def test_piecewise_linear_activations_never_use_quadrature(monkeypatch):
    def boom(*args):
        raise AssertionError("quadrature called for a piecewise-linear activation")
    monkeypatch.setattr(theory, "_quadrature_moments", boom)
    for name in PIECEWISE_LINEAR:
        theory.moments(name, Q_GRID)
        theory.length_map(name, 1.0, 1.0, 0.1)
        theory.chi(name, 1.0, 1.0)
        theory.depth_scale(name, 1.5, 0.1)
        theory.predict([8, 8, 8, 3], name, "he_normal", 1.0)


@pytest.mark.parametrize("name, alpha", [(n, None) for n in PIECEWISE_LINEAR] + [("leaky_relu", 0.3)])
def test_composite_rule_reproduces_closed_forms(name, alpha):
    """The rule is split at z = 0, so even a kink at 0 is integrated to rounding error."""
    act = _act(name, alpha)
    for q in Q_GRID[1:]:
        got = np.array(theory._quadrature_moments(act, q))
        want = np.array(theory.moments(act, q))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * math.sqrt(q))


# -------------------------------------------------------------------------- quadrature
@pytest.mark.parametrize("name", BOUNDED)
def test_quadrature_matches_monte_carlo(name):
    act = activations.get(name)
    z = np.random.default_rng(12345).standard_normal(2_000_000)
    for q in (0.05, 0.5, 1.0, 3.0, 10.0):
        u = math.sqrt(q) * z
        a = act.forward(u)
        d = act.derivative(u, a)
        samples = (a, a * a, d * d)
        for i, (pred, x) in enumerate(zip(theory.moments(name, q), samples)):
            se = x.std() / math.sqrt(x.size)
            assert abs(pred - x.mean()) < 5 * se, (name, q, i, pred, x.mean(), se)


@pytest.mark.parametrize("name", BOUNDED)
def test_quadrature_matches_adaptive_quadrature(name):
    integrate = pytest.importorskip("scipy.integrate")
    act = activations.get(name)

    def expect(f, q):
        s = math.sqrt(q)
        g = lambda z: float(f(np.array([s * z]))[0]) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        pts = sorted({c / s for c in (0.1, 1.0, 5.0) if c / s < 10} | {1.0})
        edges = [0.0] + pts + [12.0]
        tot = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            tot += integrate.quad(g, lo, hi, epsabs=1e-17, epsrel=1e-13, limit=200)[0]
            tot += integrate.quad(g, -hi, -lo, epsabs=1e-17, epsrel=1e-13, limit=200)[0]
        return tot

    fns = (lambda u: act.forward(u) ** 2, lambda u: act.derivative(u, act.forward(u)) ** 2)
    for q in (1e-6, 0.1, 1.0, 4.0, 25.0, 100.0, 1e4, 1e6):
        got = theory.moments(name, q)[1:]
        for g, f in zip(got, fns):
            assert g == pytest.approx(expect(f, q), rel=1e-10), (name, q)


def test_quadrature_large_q_asymptotics():
    """For s = sqrt(q) -> inf: E[sech^4(s z)] ~ (4/3)/(s sqrt(2 pi)), E[tanh^2] ~ 1 - 2/(s sqrt(2 pi))."""
    for q in (1e8, 1e12):
        s = math.sqrt(q) * math.sqrt(2 * math.pi)
        _, ms, dms = theory.moments("tanh", q)
        assert dms == pytest.approx(4 / 3 / s, rel=1e-6)
        assert 1 - ms == pytest.approx(2 / s, rel=1e-6)
        _, _, dms = theory.moments("sigmoid", q)  # sigmoid' = sech^2(u/2)/4
        assert dms == pytest.approx(2 * 4 / 3 / 16 / s, rel=1e-6)


def test_quadrature_agrees_with_gauss_hermite_where_that_is_accurate():
    x, w = np.polynomial.hermite_e.hermegauss(101)
    w = w / math.sqrt(2 * math.pi)
    for name in ("tanh", "sigmoid"):
        act = activations.get(name)
        for q in (0.01, 0.5, 1.0):
            a = act.forward(math.sqrt(q) * x)
            d = act.derivative(math.sqrt(q) * x, a)
            np.testing.assert_allclose(theory.moments(name, q)[1:], [w @ (a * a), w @ (d * d)], rtol=1e-8)


def test_moments_at_zero_and_vectorization():
    assert theory.moments("sigmoid", 0.0) == pytest.approx((0.5, 0.25, 1 / 16), rel=1e-13)
    assert theory.moments("tanh", 0.0) == pytest.approx((0.0, 0.0, 1.0), rel=1e-13, abs=0)
    q = np.array([[0.1, 1.0], [2.0, 5.0]])
    got = theory.length_map("tanh", q, 1.3, 0.2)
    assert got.shape == q.shape
    np.testing.assert_array_equal(got, [[theory.length_map("tanh", v, 1.3, 0.2) for v in row] for row in q])
    assert isinstance(theory.chi("softsign", 1.0, 1.0), float)


def test_odd_activation_means_vanish(ref):
    z = np.linspace(0.01, 8.0, 50)
    odd = [n for n in theory.supported() if np.array_equal(ref.phi(n, -z), -ref.phi(n, z))]
    assert len(odd) >= 3  # tanh, softsign, identity
    for name in odd:
        assert abs(theory.moments(name, 2.0)[0]) < 1e-15
    assert theory.moments("sigmoid", 2.0)[0] == pytest.approx(0.5, abs=1e-14)


# ------------------------------------------------------------------------ fixed points
@pytest.mark.parametrize("name", BOUNDED)
@pytest.mark.parametrize("sw2, sb2", [(1.0, 0.05), (1.76, 0.05), (2.0, 0.0), (3.0, 0.5), (0.5, 0.3),
                                      (25.0, 0.0), (1.01, 0.0)])
def test_fixed_point_is_fixed(name, sw2, sb2):
    q = theory.fixed_point(name, sw2, sb2)
    assert q >= 0
    assert abs(theory.length_map(name, q, sw2, sb2) - q) <= 1e-10 * max(q, 1e-300)


@pytest.mark.parametrize("name, sw2, sb2", [("tanh", 1.5, 0.05), ("tanh", 3.0, 0.3), ("sigmoid", 4.0, 0.0),
                                            ("softsign", 2.0, 0.1)])
def test_fixed_point_is_the_limit_of_iterating_the_map(name, sw2, sb2):
    q_star = theory.fixed_point(name, sw2, sb2)
    for q in (1e-3, 1.0, 30.0):
        for _ in range(300):
            q = theory.length_map(name, q, sw2, sb2)
        assert q == pytest.approx(q_star, rel=1e-9)


def _phi_at_zero(name):
    act = activations.get(name)
    return float(act.forward(np.zeros(1))[0])


@pytest.mark.parametrize("name", [n for n in BOUNDED if _phi_at_zero(n) == 0.0])  # tanh, softsign
def test_zero_fixed_point_in_the_ordered_phase(name):
    for sw2 in (0.0, 0.5, 0.99, 1.0):
        assert theory.fixed_point(name, sw2, 0.0) == 0.0
    q = theory.fixed_point(name, 1.2, 0.0)  # chaotic: 0 is unstable, the limit is positive
    assert q > 1e-3  # tanh 0.08, softsign 0.003
    assert theory.fixed_point(name, 1.2, 0.0, q0=0.0) == 0.0  # ... unless one starts at 0


def test_fixed_point_divergence_and_degenerate_cases():
    assert theory.fixed_point("relu", 2.0, 0.0, q0=3.0) == 3.0  # every q is fixed
    assert theory.fixed_point("identity", 1.0, 0.0, q0=0.7) == 0.7
    assert theory.fixed_point("relu", 4.0, 0.0, q0=0.0) == 0.0
    for args in (("relu", 2.0, 0.1), ("relu", 2.5, 0.0), ("identity", 1.5, 0.0),
                 ("leaky_relu", 2.0, 0.0)):
        with pytest.raises(theory.FixedPointError, match="grows without bound"):
            theory.fixed_point(*args)
    assert theory.fixed_point("sigmoid", 0.0, 0.0) == 0.0
    assert theory.fixed_point("sigmoid", 0.0, 0.4) == pytest.approx(0.4, rel=1e-15)


@pytest.mark.parametrize("name", BOUNDED)
def test_map_over_q_is_strictly_decreasing(name):
    """The assumption behind the bisection in fixed_point: F(q)/q strictly decreasing."""
    q = np.geomspace(1e-4, 1e4, 200)
    for sw2, sb2 in ((1.0, 0.05), (3.0, 0.0), (20.0, 0.2)):
        ratio = theory.length_map(name, q, sw2, sb2) / q
        assert np.all(np.diff(ratio) < 0)


# ------------------------------------------------------------------------ depth scales
def test_depth_scale_off_and_near_criticality():
    assert theory.depth_scale("tanh", 0.5, 0.0) == pytest.approx(-1 / math.log(0.5), rel=1e-14)  # q* = 0
    assert theory.depth_scale("tanh", 1.0, 0.0) == math.inf  # chi(0) = 1 exactly
    assert theory.depth_scale("relu", 2.0, 0.3) == math.inf
    assert theory.depth_scale("relu", 0.0, 0.3) == 0.0
    ordered = theory.depth_scale("tanh", 1.0, 0.05)
    chaotic = theory.depth_scale("tanh", 4.0, 0.05)
    assert 0 < ordered < 50 and -50 < chaotic < 0
    near = theory.depth_scale("tanh", 1.76, 0.05)  # just below the critical 1.7610
    assert near > 1000
    crit = theory.critical_sigma_w2("tanh", 0.05)
    assert 1.755 < crit < 1.765
    assert theory.chi("tanh", theory.fixed_point("tanh", crit, 0.05), crit) == pytest.approx(1.0, abs=1e-9)
    xi = [theory.depth_scale("tanh", crit + d, 0.05) for d in (-0.1, -0.01, -0.001, 0.001, 0.01, 0.1)]
    assert 0 < xi[0] < xi[1] < xi[2] and xi[3] < xi[4] < xi[5] < 0  # |xi| grows towards criticality
    assert min(abs(xi[2]), abs(xi[3])) > 1000


@pytest.mark.parametrize("name", BOUNDED)
def test_chi_at_fixed_point_increases_with_sigma_w2(name):
    """The assumption behind critical_sigma_w2's bisection."""
    for sb2 in (0.0, 0.05, 0.5):
        sw2 = np.geomspace(0.5, 400.0, 25)
        c = [theory.chi(name, theory.fixed_point(name, s, sb2), s) for s in sw2]
        assert np.all(np.diff(c) >= 0), (name, sb2)
        crit = theory.critical_sigma_w2(name, sb2)
        assert theory.chi(name, theory.fixed_point(name, crit, sb2), crit) == pytest.approx(1.0, abs=1e-7)


# ----------------------------------------------------------------------------- predict
def test_predict_composes_the_maps_with_width_factors():
    sizes = [20, 30, 40, 40, 5]
    sb2 = 0.1
    p = theory.predict(sizes, "tanh", "xavier_normal", input_ms=2.0, sigma_b2=sb2)
    sw2 = [2 * a / (a + b) for a, b in zip(sizes[:-1], sizes[1:])]
    np.testing.assert_allclose(p["sigma_w2"], sw2, rtol=1e-15)
    q = [sw2[0] * 2.0 + sb2]
    for l in range(1, 4):
        q.append(theory.length_map("tanh", q[-1], sw2[l], sb2))
    np.testing.assert_allclose(p["preact_var"], q, rtol=1e-15)
    chis = [theory.chi("tanh", q[l], sw2[l + 1]) * sizes[l + 2] / sizes[l + 1] for l in range(3)]
    np.testing.assert_allclose(p["chi"][:3], chis, rtol=1e-14)
    assert np.isnan(p["chi"][3])
    np.testing.assert_allclose(p["delta_ms"], [chis[0] * chis[1] * chis[2], chis[1] * chis[2], chis[2], 1.0],
                               rtol=1e-14)
    mean, ms, _ = theory.moments("tanh", np.array(q[:3]))
    np.testing.assert_allclose(p["act_var"], list(ms - mean ** 2) + [q[3]], rtol=1e-14)
    np.testing.assert_array_equal(p["act_mean"], list(mean) + [0.0])


def test_predict_relu_width_ratio():
    p = theory.predict([10, 64, 32, 8], "relu", "he_normal", 1.0)
    np.testing.assert_allclose(p["preact_var"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(p["chi"][:2], [32 / 64, 8 / 32])  # 2 * (1/2) * n_(l+1)/n_l
    np.testing.assert_allclose(p["delta_ms"], [32 / 64 * 8 / 32, 8 / 32, 1.0])


def test_predict_rejects_constant_init_and_bad_sizes():
    with pytest.raises(ValueError, match="constant"):
        theory.predict([4, 4, 2], "tanh", "constant", 1.0)
    with pytest.raises(ValueError, match="sizes"):
        theory.predict([4], "tanh", "uniform", 1.0)


# ------------------------------------------------- measured networks against the theory
WIDTH, DEPTH, N_OUT, BATCH, SEEDS = 1024, 10, 10, 256, range(8)
# a sample of theory.supported(), two bounded and two closed-form (each activation costs about a
# quarter of the fixture's minute); the others' moments are checked against quadrature above
MEASURED_ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")
assert set(MEASURED_ACTIVATIONS) <= set(theory.supported())
MEASURED_INITS = ("uniform", "xavier_normal", "he_normal")
USED_STATS = ("preact_mean", "preact_var", "act_var", "delta_ms")


def test_weights_depend_on_seed_and_init_only():
    """Justifies sharing one draw of the weights across activations in ``measured``."""
    a = MLP(16, [16, 16], 3, activation="tanh", init="he_normal", seed=3)
    b = MLP(16, [16, 16], 3, activation="relu", init="he_normal", seed=3)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)


@pytest.fixture(scope="module")
def measured():
    """Probe stats at init averaged over seeds 0..7, for every (activation, init).

    Width 1024, depth 10, 10 outputs, cross-entropy, float64; probe batch of 256 N(0, 1)
    inputs from the seed's "data" stream. The weights depend only on (init, seed), so
    they are drawn once per (init, seed) and copied into a network of each activation
    (drawing 10.5M normals costs more than the probe itself).
    """
    data = []
    for s in SEEDS:
        rng = generator(s, "data")
        data.append((rng.standard_normal((BATCH, WIDTH)), rng.integers(0, N_OUT, BATCH)))
    nets = {act: MLP(WIDTH, [WIDTH] * DEPTH, N_OUT, activation=act, init="constant", loss="cross_entropy")
            for act in MEASURED_ACTIVATIONS}
    sums = {}
    for init in MEASURED_INITS:
        for s, (X, y) in zip(SEEDS, data):
            weights = MLP(WIDTH, [WIDTH] * DEPTH, N_OUT, activation="identity", init=init, seed=s).weights
            for act, net in nets.items():
                for dst, src in zip(net.weights, weights):
                    np.copyto(dst, src)
                stats = net.probe(X, y)
                acc = sums.setdefault((act, init), {k: np.zeros(len(net.sizes) - 1) for k in USED_STATS})
                for k in USED_STATS:
                    acc[k] += stats[k]
            del weights
    out = {}
    for key, acc in sums.items():
        m = {k: v / len(SEEDS) for k, v in acc.items()}
        m["preact_ms"] = m["preact_var"] + m["preact_mean"] ** 2  # second moment: the theory's q
        m["input_ms"] = float(np.mean([np.mean(X ** 2) for X, _ in data]))
        out[key] = m
    return out


COMBOS = [(a, i) for a in MEASURED_ACTIVATIONS for i in MEASURED_INITS]


@pytest.mark.parametrize("activation, init", COMBOS)
def test_measured_preactivations_follow_the_length_map(measured, activation, init):
    m = measured[activation, init]
    sw2 = theory.sigma_w2(init, WIDTH, WIDTH)
    q = m["preact_ms"][:DEPTH]  # hidden layers 1..depth
    pred = np.concatenate(([sw2 * m["input_ms"]], theory.length_map(activation, q[:-1], sw2, 0.0)))
    rel = q / pred - 1
    assert np.all(np.abs(rel) < 0.08), rel
    # preact_var (about the mean) is the same thing for these hidden layers: E[z] = 0
    np.testing.assert_allclose(m["preact_var"][:DEPTH], q, rtol=1e-3)


@pytest.mark.parametrize("activation, init", COMBOS)
def test_measured_activation_variance(measured, activation, init):
    m = measured[activation, init]
    mean, ms, _ = theory.moments(activation, m["preact_ms"][:DEPTH])
    rel = m["act_var"][:DEPTH] / (ms - mean ** 2) - 1
    assert np.all(np.abs(rel) < 0.08), rel


@pytest.mark.parametrize("activation, init", COMBOS)
def test_measured_backward_factor_is_chi(measured, activation, init):
    m = measured[activation, init]
    sw2 = theory.sigma_w2(init, WIDTH, WIDTH)
    d = m["delta_ms"]
    got = np.log(d[:DEPTH - 1] / d[1:DEPTH])  # hidden l <- l+1, l = 1..depth-1
    want = np.log(theory.chi(activation, m["preact_ms"][:DEPTH - 1], sw2))
    err = got - want
    assert np.all(np.abs(err) < 0.05), err
    assert abs(err.mean()) < 0.01, err
    # the step from the output layer, where the widths differ (1024 <- 10):
    # E[delta_(L-1)^2] = sigma_w2(W_L) * (n_L / n_(L-1)) * E[phi'^2] * E[delta_L^2]
    sw2_out = theory.sigma_w2(init, WIDTH, N_OUT)
    want_out = sw2_out * N_OUT / WIDTH * theory.moments(activation, m["preact_ms"][DEPTH - 1])[2]
    assert abs(np.log(d[DEPTH - 1] / d[DEPTH]) - np.log(want_out)) < 0.05


@pytest.mark.parametrize("activation, init", COMBOS)
def test_measured_profiles_against_predict_from_the_input(measured, activation, init):
    """End to end from the input alone, so finite-width errors compound over depth (for relu
    q^l is a random walk, ~sqrt(l * 2/width / 8 seeds) ~ 5% at l = 10): 10% on the hidden
    layers. The output layer's q is left out: with 10 units its mean square fluctuates by
    ~sqrt(2/10) per seed (measured up to 18% off after averaging 8 seeds, for sigmoid, whose
    per-unit offsets 0.5 * sum_i W_ij do not average over the batch)."""
    m = measured[activation, init]
    p = theory.predict([WIDTH] + [WIDTH] * DEPTH + [N_OUT], activation, init, m["input_ms"])
    rel = m["preact_ms"][:DEPTH] / p["preact_var"][:DEPTH] - 1
    assert np.all(np.abs(rel) < 0.10), rel
    dlog = np.log(m["delta_ms"] / m["delta_ms"][-1]) - np.log(p["delta_ms"])
    assert np.all(np.abs(dlog) < 0.1), dlog


# ------------------------------------------------------------- exact criticality
def _phi_and_dphi_at_zero(name):
    act = activations.get(name)
    z = np.zeros(1)
    a = act.forward(z)
    return float(a[0]), float(act.derivative(z, a)[0])


ZERO_AT_ZERO = [n for n in sorted(activations.REGISTRY) if _phi_and_dphi_at_zero(n)[0] == 0.0]


def _dphi0_sq(ref, name):
    """phi'(0)^2 as theory uses it: the limit q -> 0+ of E[phi'(sqrt(q) z)^2], the mean of the
    one-sided limits of phi'^2 at 0 (relu 1/2, leaky_relu (1 + alpha^2)/2 at a kink, phi'(0)^2
    elsewhere), from the reference phi' (conftest) at z = -+1e-300."""
    return float(np.mean(ref.dphi(name, np.array([-1e-300, 1e-300])) ** 2))


def test_zero_at_zero_list_comes_from_the_registry():
    assert {"tanh", "softsign", "relu", "leaky_relu", "identity"} <= set(ZERO_AT_ZERO)
    assert "sigmoid" not in ZERO_AT_ZERO


@pytest.mark.parametrize("name", ZERO_AT_ZERO)
@pytest.mark.parametrize("sw2", [0.25, 0.5, 1.0, 2.0, 1.9998000199980002, 3.7])
def test_chi_at_q0_is_exactly_sigma_w2_dphi0_squared(ref, name, sw2):
    assert theory.chi(name, 0.0, sw2) == sw2 * _dphi0_sq(ref, name)
    assert theory.moments(name, 0.0)[:2] == (0.0, 0.0)


@pytest.mark.parametrize("name", ZERO_AT_ZERO)
def test_fixed_point_is_exactly_zero_up_to_criticality(ref, name):
    critical = 1.0 / _dphi0_sq(ref, name)
    assert theory.critical_sigma_w2(name, 0.0) == critical
    for frac in (0.0, 0.25, 0.5, 0.99, 1.0):
        sw2 = frac * critical
        if name in PIECEWISE_LINEAR and frac == 1.0:
            # at criticality the map is q -> q: every q is fixed, the start is returned as it is
            assert theory.fixed_point(name, sw2, 0.0, q0=0.7) == 0.7
            assert theory.fixed_point(name, sw2, 0.0, q0=0.0) == 0.0
        else:
            assert theory.fixed_point(name, sw2, 0.0) == 0.0
    assert theory.depth_scale(name, critical, 0.0) == math.inf  # chi(q*) = 1, exactly


@pytest.mark.parametrize("alpha", np.random.default_rng(12).uniform(0.0, 0.99, 40).round(6).tolist())
def test_leaky_relu_critical_point_is_critical_for_any_alpha(alpha):
    """(1/k) * k is not 1 in floating point for about one k in ten: the critical sigma_w2 must
    still be neither ordered nor chaotic."""
    leaky = activations.get("leaky_relu", alpha=alpha)
    critical = theory.critical_sigma_w2(leaky, 0.0)
    assert critical == 2.0 / (1.0 + alpha * alpha)
    assert theory.chi(leaky, 1.3, critical) == 1.0
    assert theory.depth_scale(leaky, critical, 0.0) == math.inf
    assert theory.fixed_point(leaky, critical, 0.0, q0=0.3) == 0.3
