"""The spectrum of the input-output Jacobian at initialization, from free probability
(Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through
dynamical isometry", eqs. 14-17; 2018, "The emergence of spectral universality in deep networks",
section 3), in the conventions of ``nncore.theory``.

Setting. A plain MLP (no norm, no residual path) whose hidden layers l = 1..L (L = ``depth``) all
have the width n of the input, z_l = a_(l-1) W_l + b_l, a_l = phi(z_l), weights of variance
sigma_w^2 / n. In column form the Jacobian J = d a_L / d x (``MLP.jacobian``: a_L is the last
hidden layer) is the product J = D_L W_L^T ... D_1 W_1^T with D_l = diag(phi'(z_l)). At infinite
width the D_l^2 and the W_l W_l^T are asymptotically free, and the moments of J J^T follow from
multiplying S-transforms. Per layer, with u ~ N(0, q_l) the pre-activation (``theory``' length map)

  mu_1 = E[phi'(u)^2],   mu_2 = E[phi'(u)^4]             (``derivative_moments``)
  s_1  = the first coefficient of the S-transform of W W^T / sigma_w^2:
         -1 for i.i.d. entries (Marchenko-Pastur: Gaussian, and by universality every i.i.d.
         zero-mean init of ``nncore.initializers``), 0 for orthogonal weights (S = 1)

and over the stack, for the eigenvalues lambda of J J^T (the squared singular values of J):

  mean      m_1 = prod_l sigma_w^2 mu_1(q_l)                                  (= chi^L at q*)
  variance  sigma^2 = m_2 - m_1^2 = m_1^2 sum_l (mu_2(q_l) / mu_1(q_l)^2 - 1 - s_1)

(the normalized second moment of a free product is additive: each layer adds its own
mu_2/mu_1^2 - 1 from D_l^2 and -s_1 from W_l W_l^T). At the fixed point q* and criticality
(chi = sigma_w^2 mu_1(q*) = 1) this is the paper's sigma^2 = L (mu_2/mu_1^2 - 1 - s_1): linear
Gaussian L, linear orthogonal 0, ReLU Gaussian 2L, ReLU orthogonal L (relu: mu_1 = mu_2 = 1/2);
orthogonal tanh tends to 0 as q* -> 0, where phi' -> 1 (dynamical isometry).

Moments. Closed forms for the piecewise-linear activations (slopes (p, n): mu_1 = (p^2 + n^2)/2,
mu_2 = (p^4 + n^4)/2); the bounded ones by the composite Gauss-Legendre rule of ``nncore.theory``;
exactly phi'(0)^2 and phi'(0)^4 at q = 0.

Limits. Infinite width: at width n the corrections grow like L/n (the spectrum's variance at
n = 256 is about 14% above the prediction for ReLU with Gaussian weights at L = 8, and 40% at
L = 32). Only the plain MLP with square weight matrices (n_in = every hidden width) is covered:
``predict`` returns None for norms, residual paths, unequal widths, constant init and
activations the mean-field theory does not cover, where no line should be drawn.
"""
import math

import numpy as np

from . import activations, initializers, theory

# S-transform coefficient s_1 of W W^T / sigma_w^2 for each weight ensemble
S1 = {"iid": -1.0, "orthogonal": 0.0}


def ensemble(init):
    """The weight ensemble of nncore initializer ``init`` ("iid" or "orthogonal"), None for one
    outside the theory (constant: not zero-mean, every unit the same)."""
    if init not in initializers.REGISTRY:
        raise ValueError(f"unknown initializer {init!r}; valid: {', '.join(sorted(initializers.REGISTRY))}")
    if init == "constant":
        return None
    return "orthogonal" if init == "orthogonal" else "iid"


def derivative_moments(activation, q):
    """(mu_1, mu_2) = (E[phi'(u)^2], E[phi'(u)^4]) for u ~ N(0, q), q >= 0 a scalar."""
    act = theory._activation(activation)
    q = theory._nonnegative("q", q)
    if isinstance(act, activations.PiecewiseLinear):
        p, n = act.slopes
        return 0.5 * (p * p + n * n), 0.5 * (p ** 4 + n ** 4)
    if q == 0.0:
        d0 = float(act.derivative(np.zeros(1), act.forward(np.zeros(1)))[0])
        return d0 ** 2, d0 ** 4
    s = math.sqrt(q)
    t, w = theory._half_line_rule(s)
    z = np.concatenate((s * t, -s * t))
    ww = np.concatenate((w, w))
    d2 = act.derivative(z, act.forward(z)) ** 2
    return float(ww @ d2), float(ww @ (d2 * d2))


def spectrum_moments(activation, sigma_w2, q, weights, depth=None):
    """(mean, variance) of the eigenvalues of J J^T for a stack of layers with pre-activation
    second moments ``q`` (one per layer) or, with ``depth``, ``depth`` layers at one q (q*);
    ``weights`` "iid" or "orthogonal"; ``sigma_w2`` as in ``nncore.theory``."""
    if weights not in S1:
        raise ValueError(f"unknown weight ensemble {weights!r}; valid: {', '.join(S1)}")
    sigma_w2 = theory._nonnegative("sigma_w2", sigma_w2)
    qs = [q] * depth if depth is not None else list(np.atleast_1d(q))
    if not qs:
        raise ValueError("need at least one layer")
    mean, excess = 1.0, 0.0
    for q_l in qs:
        mu1, mu2 = derivative_moments(activation, float(q_l))
        mean *= sigma_w2 * mu1
        excess += (mu2 / mu1 ** 2 if mu1 > 0 else math.nan) - 1.0 - S1[weights]
    return mean, mean * mean * excess


def critical_variance(activation, depth, weights, q_star):
    """sigma^2 = L (mu_2/mu_1^2 - 1 - s_1) at criticality (chi = 1) and the fixed point q*."""
    mu1, mu2 = derivative_moments(activation, q_star)
    return depth * (mu2 / mu1 ** 2 - 1.0 - S1[weights])


def predict(sizes, activation, init, input_ms, sigma_b2=0.0, init_params=None, norm=None, residual=False):
    """{"sv2_mean", "sv2_var"} predicted for ``MLP.jacobian``'s spectrum (``probes``' statistics)
    of an MLP of ``sizes`` at initialization, at each layer's q^l from the inputs' mean square
    (``theory.predict``); None where the theory does not apply (see the module docstring)."""
    hidden = list(sizes[1:-1])
    if norm not in (None, "none") or residual or not hidden or any(n != sizes[0] for n in hidden):
        return None
    weights = ensemble(init)
    if weights is None or activations.get(activation).name not in theory.supported():
        return None
    mf = theory.predict(sizes, activation, init, input_ms, sigma_b2=sigma_b2, init_params=init_params)
    sw2 = mf["sigma_w2"][0]
    mean, var = spectrum_moments(activation, sw2, mf["preact_var"][:len(hidden)], weights)
    return {"sv2_mean": mean, "sv2_var": var}
