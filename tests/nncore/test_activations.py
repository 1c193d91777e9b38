"""Activations: values and derivatives against textbook formulas and finite differences;
sigmoid stability for large |z|."""
import warnings

import numpy as np
import pytest

from nncore import activations

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ACTIVATIONS = tuple(sorted(activations.REGISTRY))


def _grid():
    # avoid the kink at 0 for relu / leaky_relu by staying >= 1e-3 away from it
    z = np.linspace(-6.0, 6.0, 241)
    z = z[np.abs(z) > 1e-3]
    return np.concatenate([z, [-40.0, -12.5, 12.5, 40.0]])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_matches_formula(name, ref):
    act = activations.get(name)
    z = _grid()
    np.testing.assert_allclose(act.forward(z), ref.phi(name, z), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_matches_formula_and_finite_differences(name, ref):
    act = activations.get(name)
    z = _grid()
    a = act.forward(z)
    d = act.derivative(z, a.copy())
    # 1 - a^2 and a (1 - a) (torch's formulas) lose relative accuracy in the tails: absolute tolerance
    np.testing.assert_allclose(d, ref.dphi(name, z), rtol=1e-12, atol=1e-15)
    # centred finite differences of the reference value (|z| >= 1e-3 > eps: no kink crossed)
    eps = 1e-6
    num = (ref.phi(name, z + eps) - ref.phi(name, z - eps)) / (2 * eps)
    np.testing.assert_allclose(d, num, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_inputs_untouched_and_results_new(name, ref):
    act = activations.get(name)
    z = _grid()
    z_copy = z.copy()
    a = act.forward(z)
    a_copy = a.copy()
    d = act.derivative(z, a)
    dout = np.random.default_rng(0).normal(size=z.shape)
    dout_copy = dout.copy()
    g = act.backprop(dout, z, a)
    np.testing.assert_array_equal(z, z_copy)
    np.testing.assert_array_equal(a, a_copy)
    np.testing.assert_array_equal(dout, dout_copy)
    for result in (a, d, g):
        assert not any(np.shares_memory(result, x) for x in (z, dout))
    assert not np.shares_memory(d, a) and not np.shares_memory(g, a)
    np.testing.assert_allclose(a, ref.phi(name, z), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(d, ref.dphi(name, z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g, dout * ref.dphi(name, z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_max_derivative(name, ref):
    act = activations.get(name)
    assert act.max_derivative == ref.MAX_DERIVATIVE[name]
    z = np.linspace(-5, 5, 2001)
    z = z[z != 0]
    assert np.max(ref.dphi(name, z)) <= act.max_derivative + 1e-12


def test_relu_derivative_at_zero_is_zero():
    relu = activations.get("relu")
    z = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(relu.derivative(z, relu.forward(z)), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("alpha", [0.01, 0.2])
def test_leaky_relu_negative_slope_is_constant_alpha(alpha):
    act = activations.get("leaky_relu", alpha=alpha)
    z = np.array([-100.0, -3.0, -1e-3, 1e-3, 2.0, 50.0])
    np.testing.assert_allclose(act.forward(z), np.where(z > 0, z, alpha * z), rtol=1e-15)
    # derivative is alpha (not alpha * z) on the negative side
    np.testing.assert_array_equal(act.derivative(z, act.forward(z)), np.where(z > 0, 1.0, alpha))


def test_leaky_relu_bad_alpha():
    for alpha in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            activations.get("leaky_relu", alpha=alpha)


def test_unknown_activation_parameter_is_value_error():
    with pytest.raises(ValueError, match="tanh"):
        activations.get("tanh", alpha=0.1)


def test_float32_preserved():
    z = np.linspace(-3, 3, 11).astype(np.float32)
    for name in ACTIVATIONS:
        act = activations.get(name)
        a = act.forward(z)
        assert a.dtype == np.float32, name
        assert act.derivative(z, a).dtype == np.float32, name


def test_sigmoid_extreme_inputs_no_warnings_and_exact_limits(ref):
    sig = activations.get("sigmoid")
    z = np.array([-1e4, -1e3, -745.0, -700.0, -40.0, -1.0, 0.0, 1.0, 40.0, 700.0, 1e3, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # overflow / invalid / divide would all be bugs; underflow of exp(-|z|) to 0 is the correct answer
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            s = sig.forward(z)
            d = sig.derivative(z, s)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(d))
    assert s[0] == 0.0 and s[-1] == 1.0
    assert s[1] == 0.0 and s[-2] == 1.0
    # moderate values agree with the overflow-free reference 0.5 (1 + tanh(z/2))
    np.testing.assert_allclose(s, ref.phi("sigmoid", z), rtol=1e-12, atol=1e-300)
    # the small tail is computed relatively accurately (not 1 - (1 - tiny))
    np.testing.assert_allclose(s[3], np.exp(-700.0), rtol=1e-12)
    np.testing.assert_allclose(s[4], np.exp(-40.0) / (1 + np.exp(-40.0)), rtol=1e-12)
    assert np.all(d >= 0) and d[0] == 0.0 and d[-1] == 0.0
    assert np.all(np.diff(s) >= 0)


def test_sigmoid_infinities_and_nan():
    """phi(+-inf) is exactly 1 and 0; NaN stays NaN (a diverged network's probes show it)."""
    sig = activations.get("sigmoid")
    with np.errstate(invalid="ignore"):
        s = sig.forward(np.array([-np.inf, np.inf, np.nan, -0.0]))
    assert s[0] == 0.0 and s[1] == 1.0 and np.isnan(s[2]) and s[3] == 0.5


def test_sigmoid_symmetry():
    sig = activations.get("sigmoid")
    z = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(sig.forward(z) + sig.forward(-z), 1.0, rtol=0, atol=4.5e-16)


def test_registry_names():
    assert set(activations.REGISTRY) == set(ACTIVATIONS)


# ------------------------------------------------------- parameters and Gaussian moments
CLOSED_FORM = tuple(n for n in ACTIVATIONS if activations.get(n).gaussian_gains() is not None)


def test_parameters_declared_with_defaults():
    """Every class builds with its declared defaults, rejects unknown names, and rebuilds from
    param_values; leaky_relu's alpha is its one parameter today."""
    assert activations.REGISTRY["leaky_relu"].params == {"alpha": 0.01}
    assert activations.parameter_names() == ("alpha",)
    for name in ACTIVATIONS:
        cls = activations.REGISTRY[name]
        act = cls()
        assert act.param_values() == cls.params
        other = cls(**act.param_values())
        assert repr(other) == repr(act)
        with pytest.raises(ValueError, match="no parameter"):
            cls(beta=1.0)
    leaky = activations.get("leaky_relu", alpha=0.2)
    assert leaky.param_values() == {"alpha": 0.2} and repr(leaky) == "LeakyReLU(alpha=0.2)"
    assert activations.parameters_of("leaky_relu", {"alpha": 0.3, "beta": 1}) == {"alpha": 0.3}
    assert activations.parameters_of("tanh", {"alpha": 0.3}) == {}
    with pytest.raises(ValueError, match="instance"):
        activations.get(leaky, alpha=0.1)


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_slopes_match_the_reference(name, ref):
    """phi(z) = p z for z > 0 and n z for z < 0, with (p, n) the declared slopes."""
    act = activations.get(name)
    p, n = act.slopes
    z = np.linspace(0.01, 5.0, 50)
    np.testing.assert_array_equal(ref.phi(name, z), p * z)
    np.testing.assert_array_equal(ref.phi(name, -z), -n * z)
    assert act.max_derivative == ref.MAX_DERIVATIVE[name]


def _gauss_expect(f):
    """E[f(g)], g ~ N(0, 1), by Simpson's rule on each half line (a kink at 0 is never crossed)."""
    t = np.linspace(0.0, 14.0, 140001)
    t[0] = np.finfo(float).tiny  # the one-sided limit at 0: phi' of a kink takes that side's slope
    w = np.full(t.size, 2.0)
    w[1::2], w[0], w[-1] = 4.0, 1.0, 1.0
    total = 0.0
    for sign in (-1.0, 1.0):
        total += (t[1] - t[0]) / 3 * np.sum(w * f(sign * t) * np.exp(-t * t / 2))
    return float(total / np.sqrt(2 * np.pi))


@pytest.mark.parametrize("name, alpha", [(n, None) for n in CLOSED_FORM] + [
    (n, 0.2) for n in CLOSED_FORM if "alpha" in activations.REGISTRY[n].params])
def test_gaussian_moments_against_integration_of_the_reference(name, alpha, ref):
    """gaussian_gains = (E[phi^2], E[phi'^2], E[phi]) and gaussian_fourth_moment = E[phi^4] at
    unit variance, against quadrature of conftest's phi and phi' (positive homogeneity makes
    them the q-independent gains)."""
    act = activations.get(name, **({} if alpha is None else {"alpha": alpha}))
    a = ref.LEAKY_ALPHA if alpha is None else alpha
    want = [_gauss_expect(lambda g: ref.phi(name, g, a) ** 2), _gauss_expect(lambda g: ref.dphi(name, g, a) ** 2),
            _gauss_expect(lambda g: ref.phi(name, g, a))]
    np.testing.assert_allclose(act.gaussian_gains(), want, rtol=1e-12, atol=1e-15)
    assert act.gaussian_fourth_moment() == pytest.approx(_gauss_expect(lambda g: ref.phi(name, g, a) ** 4), rel=1e-12)


def test_no_closed_forms_for_the_others():
    for name in sorted(set(ACTIVATIONS) - set(CLOSED_FORM)):
        act = activations.get(name)
        assert act.gaussian_fourth_moment() is None and act.sup_square is not None, name
