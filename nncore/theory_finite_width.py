"""Finite-width bands for piecewise-linear networks (relu, leaky_relu, identity) at
initialization: the log-normal
approximation of the per-layer second moments (Hanin 2018, "Which neural net architectures
give rise to exploding and vanishing gradients?"; Hanin & Rolnick 2018, "How to start
training: the effect of initialization and architecture", Thm. 5: for ReLU with He init,
ln of the squared activation norm has variance about 5 sum_l 1/n_l).

Setting as in ``nncore.theory`` (row vectors, z_l = a_(l-1) @ W_l, zero biases, i.i.d.
zero-mean weights of variance sigma_w^2 / n_(l-1)), for one input x. Given a_(l-1), the
entries of z_l are i.i.d. N(0, s_l^2) with s_l^2 = sigma_w^2 ||a_(l-1)||^2 / n_(l-1) when W
is Gaussian, and the normalized z_l / s_l are independent of everything below. For a
positively homogeneous phi (phi(s g) = s phi(g), s > 0: the piecewise-linear activations of
``nncore.activations``, whose slopes give every moment below in closed form) it follows that

  q_l = ||z_l||^2 / n_l          = s_l^2 * (chi^2_(n_l) / n_l)                 relative variance 2 / n_l
  m_l = ||phi(z_l)||^2 / n_l     = s_l^2 * mean_j phi(g_j)^2, g_j ~ N(0, 1)    relative variance kappa / n_l
  s_(l+1)^2 = sigma_w^2 m_l

with kappa = E[phi(g)^4] / E[phi(g)^2]^2 - 1 (``gaussian_fourth_moment()`` over the square of
the first of ``gaussian_gains()``; with slopes (p, n), 6 (p^4 + n^4) / (p^2 + n^2)^2 - 1): 5 for
ReLU (E[relu(g)^2] = 1/2, E[relu(g)^4] = 3/2), 6 (1 + alpha^4) / (1 + alpha^2)^2 - 1 for leaky
ReLU, 2 for the identity (m_l = q_l: the chi-square factor itself). The means are the mean-field
values (``nncore.theory.predict``: E[q_l] = q^l exactly for these activations), and the
layers multiply independent factors: q_l = s_1^2 (prod_(j<l) sigma_w^2 mean phi(g_j)^2)
(chi^2_(n_l) / n_l), each factor a function of its own layer's normalized z_j alone. The
log-normal approximation matches each factor's mean and variance with a log-normal one
(sigma^2 = ln(1 + relative variance), mu = ln mean - sigma^2 / 2), so that

  ln q_l ~ N(ln q^l - v_l / 2, v_l),   v_l = sum_(j<l) ln(1 + kappa / n_j) + ln(1 + 2 / n_l)
  ln m_l ~ N(ln m^l - w_l / 2, w_l),   w_l = sum_(j<=l) ln(1 + kappa / n_j)

(for small 1/n: variance 5 sum 1/n_j and a median 5/2 sum 1/n_j below the mean, as Hanin &
Rolnick). The median is exp(mu) and the central interval exp(mu -+ z sigma).

Limits. The factors' means and variances are exact for Gaussian weights; uniform weights
(he_uniform, ...) lower each factor's relative variance by their excess kurtosis (-1.2)
times the participation of a_(l-1), about 14/n^2 for ReLU (4.5% of 5/n at n = 64). The
log-normal shape is an approximation whose error shrinks as the sum over many layers makes ln q
Gaussian. A probe averages q over a batch of inputs; since the weights are
shared and deep ReLU layers make inputs nearly collinear, the batch average fluctuates
almost as one input does (slightly less). A linear network (identity) keeps its inputs' angles,
so there the batch average fluctuates much less than one input: measured (plain NumPy, 300
networks, width 64, Gaussian inputs of dimension 64, batch 256, sigma_w^2 = 1) the variance of
ln q is 0.31 for one input and 0.027 for the batch average at layer 10 (band 0.31), 0.67 and
0.099 at layer 20 (band 0.62). Biases (sigma_b > 0) couple the factors to the
scale of a_(l-1): no band is given then. For sigmoid, tanh and softsign the factors depend
on q itself and no closed form is known here (they have no ``gaussian_fourth_moment``): ``band``
raises for them.
"""
import math

import numpy as np

from . import activations, theory

__all__ = ["kappa", "band", "normal_quantile", "supported"]


def _has_band(act):
    return act.gaussian_fourth_moment() is not None and act.gaussian_gains() is not None


def supported():
    """Names of the registry's activations with a band: closed-form second and fourth Gaussian
    moments (the positively homogeneous, piecewise-linear ones)."""
    return tuple(name for name, cls in sorted(activations.REGISTRY.items()) if _has_band(cls()))


def _activation(activation):
    act = activations.get(activation)  # an instance, or the named one with its default parameters
    if not _has_band(act):
        raise ValueError(f"no finite-width band for activation {act.name!r} "
                         f"(known for {', '.join(supported())})")
    return act


def kappa(activation):
    """E[phi(g)^4] / E[phi(g)^2]^2 - 1 for g ~ N(0, 1): the relative variance per unit."""
    act = _activation(activation)
    e_phi2 = act.gaussian_gains()[0]
    return act.gaussian_fourth_moment() / (e_phi2 * e_phi2) - 1.0


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


def band(sizes, activation, init, input_ms, init_params=None, level=0.9, sigma_b2=0.0):
    """Median and central ``level`` interval of each layer's second moments at width ``sizes``.

    Arguments as ``nncore.theory.predict`` (``sizes`` = [n_in, hidden..., n_out]; ``activation``
    a name or an instance). Returns
    {"preact_var": {...}, "act_ms": {...}}, each {"mean", "median", "low", "high", "log_var"}
    of arrays over layers 1..L: q_l = ||z_l||^2 / n_l (every layer, the output's logits
    included) and m_l = ||phi(z_l)||^2 / n_l (hidden layers; NaN at L).
    """
    act = _activation(activation)
    k = kappa(act)
    if sigma_b2 != 0.0:
        raise ValueError(f"the log-normal band is derived for zero biases, got sigma_b2={sigma_b2!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    pred = theory.predict(sizes, act, init, input_ms, sigma_b2=0.0, init_params=init_params)
    widths = np.asarray([int(n) for n in sizes[1:]], dtype=np.float64)
    unit = np.log1p(k / widths)                 # ln(1 + kappa / n_j), one per layer
    below = np.concatenate([[0.0], np.cumsum(unit[:-1])])  # sum over j < l
    preact_var = below + np.log1p(2.0 / widths)
    act_var = np.cumsum(unit)
    act_var[-1] = np.nan                        # the output layer has no phi
    e_phi2 = act.gaussian_gains()[0]            # E[phi(g)^2]: m^l = q^l E[phi^2] / 1
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
