"""Finite-width bands for ReLU and leaky ReLU networks at initialization: the log-normal
approximation of the per-layer second moments (Hanin 2018, "Which neural net architectures
give rise to exploding and vanishing gradients?"; Hanin & Rolnick 2018, "How to start
training: the effect of initialization and architecture", Thm. 5: for ReLU with He init,
ln of the squared activation norm has variance about 5 sum_l 1/n_l).

Setting as in ``nncore.theory`` (row vectors, z_l = a_(l-1) @ W_l, zero biases, i.i.d.
zero-mean weights of variance sigma_w^2 / n_(l-1)), for one input x. Given a_(l-1), the
entries of z_l are i.i.d. N(0, s_l^2) with s_l^2 = sigma_w^2 ||a_(l-1)||^2 / n_(l-1) when W
is Gaussian, and the normalized z_l / s_l are independent of everything below. So

  q_l = ||z_l||^2 / n_l          = s_l^2 * (chi^2_(n_l) / n_l)                 relative variance 2 / n_l
  m_l = ||phi(z_l)||^2 / n_l     = s_l^2 * mean_j phi(g_j)^2, g_j ~ N(0, 1)    relative variance kappa / n_l
  s_(l+1)^2 = sigma_w^2 m_l

with kappa = E[phi(g)^4] / E[phi(g)^2]^2 - 1: 5 for ReLU (E[relu(g)^2] = 1/2, E[relu(g)^4] =
3/2), 6 (1 + alpha^4) / (1 + alpha^2)^2 - 1 for leaky ReLU. The means are the mean-field
values (``nncore.theory.predict``: E[q_l] = q^l exactly for these activations), and the
layers multiply independent factors. The log-normal approximation matches each factor's
mean and variance with a log-normal one (sigma^2 = ln(1 + relative variance), mu = ln mean -
sigma^2 / 2), so that

  ln q_l ~ N(ln q^l - v_l / 2, v_l),   v_l = sum_(j<l) ln(1 + kappa / n_j) + ln(1 + 2 / n_l)
  ln m_l ~ N(ln m^l - w_l / 2, w_l),   w_l = sum_(j<=l) ln(1 + kappa / n_j)

(for small 1/n: variance 5 sum 1/n_j and a median 5/2 sum 1/n_j below the mean, as Hanin &
Rolnick). The median is exp(mu) and the central interval exp(mu -+ z sigma).

Limits. The factors' means and variances are exact for Gaussian weights; uniform weights
(he_uniform, ...) lower each factor's relative variance by their excess kurtosis (-1.2)
times the participation of a_(l-1), about 14/n^2 for ReLU (4.5% of 5/n at n = 64). The log-normal shape is an approximation whose error shrinks as the sum over many
layers makes ln q Gaussian. A probe averages q over a batch of inputs; since the weights are
shared and deep ReLU layers make inputs nearly collinear, the batch average fluctuates
almost as one input does (slightly less). Biases (sigma_b > 0) couple the factors to the
scale of a_(l-1): no band is given then. For sigmoid, tanh and softsign the factors depend
on q itself and no closed form is known here: ``band`` raises for them.
"""
import math

import numpy as np

from . import theory

__all__ = ["kappa", "band", "normal_quantile", "BAND_ACTIVATIONS"]

BAND_ACTIVATIONS = ("relu", "leaky_relu")


def kappa(activation, alpha=0.01):
    """E[phi(g)^4] / E[phi(g)^2]^2 - 1 for g ~ N(0, 1): the relative variance per unit."""
    if activation == "relu":
        return 5.0
    if activation == "leaky_relu":
        return 6.0 * (1.0 + alpha ** 4) / (1.0 + alpha ** 2) ** 2 - 1.0
    raise ValueError(f"no finite-width band for activation {activation!r} "
                     f"(known for {', '.join(BAND_ACTIVATIONS)})")


def normal_quantile(p):
    """The p-quantile of N(0, 1), by bisection on math.erf (to ~1e-15)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def band(sizes, activation, init, input_ms, init_params=None, alpha=0.01, level=0.9, sigma_b2=0.0):
    """Median and central ``level`` interval of each layer's second moments at width ``sizes``.

    Arguments as ``nncore.theory.predict`` (``sizes`` = [n_in, hidden..., n_out]). Returns
    {"preact_var": {...}, "act_ms": {...}}, each {"mean", "median", "low", "high", "log_var"}
    of arrays over layers 1..L: q_l = ||z_l||^2 / n_l (every layer, the output's logits
    included) and m_l = ||phi(z_l)||^2 / n_l (hidden layers; NaN at L).
    """
    k = kappa(activation, alpha)
    if sigma_b2 != 0.0:
        raise ValueError(f"the log-normal band is derived for zero biases, got sigma_b2={sigma_b2!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    pred = theory.predict(sizes, activation, init, input_ms, sigma_b2=0.0, init_params=init_params, alpha=alpha)
    widths = np.asarray([int(n) for n in sizes[1:]], dtype=np.float64)
    unit = np.log1p(k / widths)                 # ln(1 + kappa / n_j), one per layer
    below = np.concatenate([[0.0], np.cumsum(unit[:-1])])  # sum over j < l
    preact_var = below + np.log1p(2.0 / widths)
    act_var = np.cumsum(unit)
    act_var[-1] = np.nan                        # the output layer has no phi
    e_phi2 = 0.5 * (1.0 + alpha ** 2) if activation == "leaky_relu" else 0.5
    act_mean = np.concatenate([pred["preact_var"][:-1] * e_phi2, [np.nan]])
    z = normal_quantile(0.5 + level / 2)
    out = {}
    for name, mean, log_var in (("preact_var", pred["preact_var"], preact_var), ("act_ms", act_mean, act_var)):
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = np.log(mean) - log_var / 2
        sd = np.sqrt(log_var)
        out[name] = {"mean": mean, "median": np.exp(mu), "low": np.exp(mu - z * sd),
                     "high": np.exp(mu + z * sd), "log_var": log_var}
    return out
