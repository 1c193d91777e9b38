"""nncore.theory_finite_width against a Monte Carlo of random networks written here from the
definitions (Gaussian weights; ReLU with He init, the identity with sigma_w^2 = 1), not with nncore."""
import numpy as np
import pytest

from nncore import activations, theory
from nncore import theory_finite_width as fw

N_NETS, N_IN, WIDTH, DEPTH = 400, 16, 64, 10


# the Monte Carlo's networks: (phi, sigma_w^2, nncore init with that sigma_w^2)
MC_CASES = {"relu": (lambda z: np.maximum(z, 0.0), 2.0, "he_normal"),
            "identity": (lambda z: z, 1.0, "lecun_normal")}


def _monte_carlo(name):
    """ln of each layer's second moments over N_NETS random networks on one input:
    (ln ||z_l||^2 / n_l over layers 1..L, ln ||phi(z_l)||^2 / n_l over hidden layers, x)."""
    phi, sw2, _ = MC_CASES[name]
    rng = np.random.default_rng(2018)
    x = rng.standard_normal(N_IN)
    sizes = [N_IN] + [WIDTH] * DEPTH + [10]
    ln_q, ln_m = np.empty((N_NETS, DEPTH + 1)), np.empty((N_NETS, DEPTH))
    for k in range(N_NETS):
        a = x
        for l in range(DEPTH + 1):
            z = a @ (rng.standard_normal((sizes[l], sizes[l + 1])) * np.sqrt(sw2 / sizes[l]))
            ln_q[k, l] = np.log(np.mean(z * z))
            if l < DEPTH:
                a = phi(z)
                ln_m[k, l] = np.log(np.mean(a * a))
    return ln_q, ln_m, x, sizes


@pytest.fixture(scope="module")
def monte_carlo():
    return _monte_carlo("relu")


@pytest.mark.parametrize("name", sorted(MC_CASES))
def test_band_median_and_90_percent_interval_match_the_monte_carlo(name):
    ln_q, ln_m, x, sizes = _monte_carlo(name)
    band = fw.band(sizes, name, MC_CASES[name][2], float(np.mean(x * x)))
    for measured, name in ((ln_q, "preact_var"), (ln_m, "act_ms")):
        b = band[name]
        layers = measured.shape[1]
        median, low, high = (np.log(b[key][:layers]) for key in ("median", "low", "high"))
        mc_low, mc_median, mc_high = np.quantile(measured, [0.05, 0.5, 0.95], axis=0)
        sd = measured.std(axis=0)
        # the 5/50/95% quantiles of 400 samples are known to ~0.1 sd; the log-normal shape
        # misses the slight left skew of ln chi-square by a little more in the lower tail
        assert np.all(np.abs(median - mc_median) < 0.15 * sd + 0.02), name
        assert np.all(np.abs(high - mc_high) < 0.25 * sd + 0.02), name
        assert np.all(np.abs(low - mc_low) < 0.3 * sd + 0.02), name
        inside = np.mean((measured >= low) & (measured <= high), axis=0)
        assert np.all(np.abs(inside - 0.9) < 0.06), (name, inside)


def test_band_spread_grows_as_five_sum_of_inverse_widths(monte_carlo):
    ln_q, _, x, sizes = monte_carlo
    band = fw.band(sizes, "relu", "he_normal", float(np.mean(x * x)))
    # Hanin & Rolnick 2018: Var ln ~ 5 sum 1/n_l for ReLU (plus the last layer's own 2/n)
    var = band["preact_var"]["log_var"]
    expected = 5.0 * np.arange(DEPTH + 1) / WIDTH + 2.0 / np.array(sizes[1:])
    assert np.allclose(var, expected, rtol=0.06)
    # sampled variance of 400 networks: ~7% standard error, and ln chi-square is slightly wider
    assert np.allclose(var[:-1], ln_q.var(axis=0)[:-1], rtol=0.25)
    # the mean is the mean-field value; the median lies below it by half the variance
    mean_field = theory.predict(sizes, "relu", "he_normal", float(np.mean(x * x)))["preact_var"]
    assert np.allclose(band["preact_var"]["mean"], mean_field)
    assert np.allclose(np.log(band["preact_var"]["median"]), np.log(mean_field) - var / 2)


def test_kappa_closed_forms_and_sampled_moments(ref):
    """kappa = E[phi^4]/E[phi^2]^2 - 1: relu 5, identity 2 (the chi-square's 2/n), leaky_relu
    6 (1 + alpha^4) / (1 + alpha^2)^2 - 1, and every band activation against sampled moments of
    the reference phi."""
    assert fw.kappa("relu") == 5.0
    assert fw.kappa("identity") == 2.0
    for alpha in (0.01, 0.2):
        leaky = activations.get("leaky_relu", alpha=alpha)
        assert fw.kappa(leaky) == pytest.approx(6 * (1 + alpha ** 4) / (1 + alpha ** 2) ** 2 - 1, rel=1e-14)
    g = np.random.default_rng(0).standard_normal(2_000_000)
    for name in fw.supported():
        phi2 = ref.phi(name, g) ** 2
        assert fw.kappa(name) == pytest.approx(np.mean(phi2 ** 2) / np.mean(phi2) ** 2 - 1, rel=0.01), name


def test_bands_are_the_piecewise_linear_activations():
    """A band needs closed-form Gaussian moments: exactly the activations with gaussian_gains."""
    closed = {n for n, cls in activations.REGISTRY.items() if cls().gaussian_gains() is not None}
    assert set(fw.supported()) == closed and {"relu", "leaky_relu", "identity"} <= closed


def test_no_band_where_none_is_known():
    for activation in sorted(set(activations.REGISTRY) - set(fw.supported())):  # sigmoid, softsign, tanh
        with pytest.raises(ValueError, match="no finite-width band"):
            fw.band([4, 8, 2], activation, "xavier_uniform", 1.0)
        with pytest.raises(ValueError, match="no finite-width band"):
            fw.kappa(activation)
    with pytest.raises(ValueError, match="zero biases"):
        fw.band([4, 8, 2], "relu", "he_normal", 1.0, sigma_b2=0.1)


def test_normal_quantile():
    assert fw.normal_quantile(0.95) == pytest.approx(1.6448536269514722, abs=1e-12)
    assert fw.normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
