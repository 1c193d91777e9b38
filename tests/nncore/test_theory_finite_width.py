"""nncore.theory_finite_width against a Monte Carlo of random networks written here from the
definitions (Gaussian He weights, ReLU), not with nncore."""
import numpy as np
import pytest

from nncore import theory
from nncore import theory_finite_width as fw

N_NETS, N_IN, WIDTH, DEPTH = 400, 16, 64, 10


@pytest.fixture(scope="module")
def monte_carlo():
    """ln of each layer's second moments over N_NETS random ReLU networks on one input:
    (ln ||z_l||^2 / n_l over layers 1..L, ln ||relu(z_l)||^2 / n_l over hidden layers, x)."""
    rng = np.random.default_rng(2018)
    x = rng.standard_normal(N_IN)
    sizes = [N_IN] + [WIDTH] * DEPTH + [10]
    ln_q, ln_m = np.empty((N_NETS, DEPTH + 1)), np.empty((N_NETS, DEPTH))
    for k in range(N_NETS):
        a = x
        for l in range(DEPTH + 1):
            z = a @ (rng.standard_normal((sizes[l], sizes[l + 1])) * np.sqrt(2.0 / sizes[l]))
            ln_q[k, l] = np.log(np.mean(z * z))
            if l < DEPTH:
                a = np.maximum(z, 0.0)
                ln_m[k, l] = np.log(np.mean(a * a))
    return ln_q, ln_m, x, sizes


def test_band_median_and_90_percent_interval_match_the_monte_carlo(monte_carlo):
    ln_q, ln_m, x, sizes = monte_carlo
    band = fw.band(sizes, "relu", "he_normal", float(np.mean(x * x)))
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


def test_leaky_relu_kappa_matches_sampled_moments():
    g = np.random.default_rng(0).standard_normal(2_000_000)
    for alpha in (0.01, 0.2):
        phi2 = np.where(g > 0, g, alpha * g) ** 2
        assert fw.kappa("leaky_relu", alpha) == pytest.approx(np.mean(phi2 ** 2) / np.mean(phi2) ** 2 - 1, rel=0.01)
    assert fw.kappa("relu") == 5.0


def test_no_band_where_none_is_known():
    for activation in ("tanh", "sigmoid", "softsign", "identity"):
        with pytest.raises(ValueError, match="no finite-width band"):
            fw.band([4, 8, 2], activation, "xavier_uniform", 1.0)
    with pytest.raises(ValueError, match="zero biases"):
        fw.band([4, 8, 2], "relu", "he_normal", 1.0, sigma_b2=0.1)


def test_normal_quantile():
    assert fw.normal_quantile(0.95) == pytest.approx(1.6448536269514722, abs=1e-12)
    assert fw.normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
