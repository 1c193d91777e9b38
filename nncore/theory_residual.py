"""Mean-field theory of residual networks at initialization, in the conventions of
``MLP(..., residual=True, residual_scale=s, norm=None | "layer")``.

Setting. Row vectors, W_l of shape (n_(l-1), n_l) with i.i.d. zero-mean entries of variance
sigma_w^2 / n_(l-1), biases of variance sigma_b^2, a_0 = x, and for the hidden layers l = 1..L-1

  z_l = a_(l-1) W_l + b_l,   u_l = LN(z_l) with norm="layer", else u_l = z_l,
  a_1 = phi(u_1)                         (layer 1 is a plain layer: it changes the width)
  a_l = a_(l-1) + s phi(u_l),  l >= 2    (all hidden widths equal)

and a linear output layer z_L = a_(L-1) W_L + b_L. LN is torch.nn.LayerNorm at
initialization (gamma = 1, beta = 0): u = (z - mean_row z) / sqrt(var_row z + eps).

Forward: second moment p_l = E[a_l^2] and mean m_l = E[a_l] (over examples and units).
Given a_(l-1), z_(l,i) = sum_j a_(l-1,j) W_(l,ji) + b_(l,i) is Gaussian over W_l with mean 0
and variance sigma_w^2 |a_(l-1)|^2 / n + sigma_b^2, which depends on a_(l-1) only through its
norm; at infinite width that norm concentrates, so z_l ~ N(0, q_l) with

  q_l = sigma_w^2 p_(l-1) + sigma_b^2     (p_0 = mean(x^2): the mean square, as in ``theory``)

*whatever the mean of a_(l-1)*, and phi(z_(l,i)) is independent of a_(l-1,i): W_l is zero-mean
and independent of a_(l-1), so E[a_(l-1,i) phi(z_(l,i))] = m_(l-1) E[phi(z_l)] (exactly, for
Gaussian W, up to the concentration of |a_(l-1)|). With M1(r) = E[phi(v)], M2(r) = E[phi(v)^2],
v ~ N(0, r) (``theory.moments``: closed forms for the piecewise-linear activations, quadrature
otherwise):

  m_l = m_(l-1) + s M1(r_l)
  p_l = p_(l-1) + 2 s m_(l-1) M1(r_l) + s^2 M2(r_l)

with r_l = q_l without a norm and r_l = q_l / (q_l + eps) with LayerNorm (the row variance of
z_l is q_l at infinite width and its row mean is O(1/sqrt(n)), so u_l ~ N(0, q_l/(q_l+eps))).
The cross term 2 s m M1 is why the mean matters: relu, leaky_relu and sigmoid have M1 > 0, so
m_l grows and p_l grows faster than the sum of the branches' second moments. relu with
sigma_w^2 = 2 and s = 1 multiplies p by more than 2 per layer (q_l = 2 p_(l-1), M2 = q/2): the
unit-scale residual stack explodes forward; with LayerNorm M1, M2 are constants and p grows
linearly (zero-mean phi) or quadratically (M1 != 0) in depth.

Backward. With g_l = d loss_n / d a_l and delta_l = d loss_n / d z_l (per example, as
``probes``' delta_ms):

  g_(L-1) = delta_L W_L^T
  delta_l = s J_l^T (phi'(u_l) * g_l)   for l >= 2 (no s for l = 1)
  g_(l-1) = g_l + delta_l W_l^T          for l >= 2 (the identity path plus the branch)

J_l the Jacobian of the norm (the identity without one). Under the gradient-independence
assumption of mean-field theory (the backward pass sees W_l^T as independent of the forward
pass; Schoenholz et al. 2017, Yang & Schoenholz 2017 "Mean field residual networks") the cross
term E[g_l . delta_l W_l^T] vanishes (W_l zero-mean), and

  E[delta_l^2]   = s^2 nu_l E[phi'(u_l)^2] E[g_l^2]       (s = 1 for l = 1)
  E[g_(l-1)^2]   = E[g_l^2] + sigma_w^2 (n_l / n_(l-1)) E[delta_l^2]
                 = E[g_l^2] (1 + s^2 sigma_w^2 nu_l E[phi'(u_l)^2])   between residual layers,
  E[g_(L-1)^2]   = sigma_w^2_L (n_L / n_(L-1)) E[delta_L^2],

with nu_l = 1 without a norm and nu_l = 1 / (q_l + eps) with LayerNorm (its Jacobian divides by
the row standard deviation and projects out the row mean and u_l: 2 of n directions, which a
gradient independent of u_l loses only a fraction 2/n of). So the residual error never shrinks
towards the input: it grows by 1 + s^2 chi_branch per layer, chi_branch = sigma_w^2 E[phi'^2]
(times nu_l), e.g. 2 for relu, He init and s = 1, and 1 + 1/L for s^2 = 1/L (so (1+1/L)^L ~ e
over the whole stack). With LayerNorm nu_l E[phi'^2] ~ E[phi'(u)^2] / p_(l-1) shrinks as p grows.

Where the backward prediction fails. Gradient independence drops the correlation between
which units of a branch are active and the weights that carry the error back. It is harmless for
zero-mean activations (tanh) and with LayerNorm, but not for relu (nor, less so, sigmoid) with
s = 1: a_l then has a large mean vector M, unit i of the next branch is on or off mostly by the
sign of (M W_l)_i, and the on-columns of W_l^T feed the error's component along M back onto
itself, a mode that grows faster than 1 + s^2 chi_branch per layer. Seeded at O(1/n), it takes
over after a depth that grows only like log(width). Measured (plain-NumPy Monte Carlo as in the
tests, relu, He, s = 1, 30 hidden layers, 2 seeds): the error at layer 1 is 10^3.2, 10^2.5 and
10^2.3 times this prediction at widths 64, 256 and 1024 (within 20% at depth 8 and width 512);
with s = 1/sqrt(30) 10^0.56, 10^0.18, 10^0.10; tanh and sigmoid within 10^0.11 at every width.
The forward recursion holds throughout (within ~5%, apart from seed noise).

Everything is a prediction for the ensemble over initializations at infinite width (and, for
inputs of different norms, for the average input norm: exact for the positively homogeneous
relu and leaky_relu without a norm); a network of width n fluctuates around it by O(1/sqrt(n))
per layer.
"""
import numpy as np

from . import activations, theory
from .checks import number

__all__ = ["predict", "branch_gain"]

NORMS = (None, "layer")


def branch_gain(activation, q, sigma_w2, residual_scale=1.0, norm=None, eps=1e-5):
    """E[g_(l-1)^2] / E[g_l^2] = 1 + s^2 sigma_w2 nu E[phi'(u)^2] between residual layers.

    ``q`` is the pre-activation second moment q_l of the branch's z_l; nu = 1 without a norm,
    1/(q + eps) with ``norm="layer"`` (where u ~ N(0, q/(q+eps))); ``activation`` a name or an
    instance.
    """
    s = number("residual_scale", residual_scale, low=0.0, strict=True)
    sigma_w2 = number("sigma_w2", sigma_w2, low=0.0)
    q = number("q", q, low=0.0)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm == "layer":
        eps = number("eps", eps, low=0.0)
        r, nu = q / (q + eps), 1.0 / (q + eps)
    else:
        r, nu = q, 1.0
    return 1.0 + s * s * sigma_w2 * nu * theory.moments(activation, r)[2]


def predict(sizes, activation, init, input_ms, residual_scale=1.0, norm=None, sigma_b2=0.0,
            init_params=None, eps=1e-5):
    """Mean-field prediction of ``MLP(..., residual=True).probe`` statistics at initialization.

    ``sizes`` = [n_in, n, n, ..., n, n_out] (the hidden widths must be equal); ``input_ms`` =
    mean(x^2); ``residual_scale`` = s > 0; ``norm`` None or "layer" (BatchNorm: see
    ``nncore.theory_batchnorm``); ``sigma_b2`` = MLP's sigma_b ** 2; ``eps`` the LayerNorm eps;
    ``activation`` a name or an instance.
    Returns arrays over layers l = 1..L (index l-1):

      preact_var  q_l, the second moment (= variance) of z_l, every layer incl. L
      act_mean    m_l = E[a_l] for hidden layers; 0 for the output layer
      act_ms      p_l = E[a_l^2] for hidden layers; q_L for the output layer
      act_var     p_l - m_l^2 for hidden layers (what ``probes`` reports); q_L for the output
      growth      p_l / p_(l-1) (p_0 = input_ms); nan for the output layer
      sigma_w2    sigma_w^2 of W_l
      chi         E[delta_l^2] / E[delta_(l+1)^2] for l < L; nan for L
      delta_ms    E[delta_l^2] / E[delta_L^2]; compare with probe's delta_ms / delta_ms[-1]
      grad_ms     E[g_l^2] / E[delta_L^2] (the error reaching a_l) for hidden layers; nan for L
    """
    sizes = [int(n) for n in sizes]
    if len(sizes) < 3 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must be [n_in, hidden..., n_out] with >= 1 hidden layer, got {sizes}")
    if len(set(sizes[1:-1])) != 1:
        raise ValueError(f"residual networks need equal hidden widths, got {sizes[1:-1]}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS} (BatchNorm: nncore.theory_batchnorm), got {norm!r}")
    act = activations.get(activation)  # an instance, or the named one with its default parameters
    s = number("residual_scale", residual_scale, low=0.0, strict=True)
    input_ms = number("input_ms", input_ms, low=0.0)
    sigma_b2 = number("sigma_b2", sigma_b2, low=0.0)
    eps = number("eps", eps, low=0.0)
    init_params = dict(init_params or {})
    L = len(sizes) - 1
    sw2 = np.array([theory.sigma_w2(init, sizes[l - 1], sizes[l], **init_params) for l in range(1, L + 1)])

    q = np.empty(L)
    m, p = np.zeros(L), np.empty(L)
    dphi2, nu = np.empty(L), np.ones(L)
    m_prev, p_prev = 0.0, input_ms
    for i in range(L):
        q[i] = sw2[i] * p_prev + sigma_b2
        if i == L - 1:
            p[i] = q[i]
            break
        if norm == "layer":
            r, nu[i] = q[i] / (q[i] + eps), 1.0 / (q[i] + eps)
        else:
            r = q[i]
        M1, M2, dphi2[i] = theory.moments(act, r)
        if i == 0:  # layer 1: a plain layer
            m[i], p[i] = M1, M2
        else:
            m[i] = m_prev + s * M1
            p[i] = p_prev + 2.0 * s * m_prev * M1 + s * s * M2
        m_prev, p_prev = m[i], p[i]

    act_var = np.where(np.arange(L) < L - 1, np.maximum(p - m * m, 0.0), q)
    growth = np.full(L, np.nan)
    growth[:-1] = p[:-1] / np.concatenate(([input_ms], p[:-2]))

    delta = np.empty(L)
    grad = np.full(L, np.nan)
    delta[L - 1] = 1.0
    grad[L - 2] = sw2[L - 1] * sizes[L] / sizes[L - 1] * delta[L - 1]
    for i in range(L - 2, -1, -1):
        branch = (s * s) if i > 0 else 1.0
        delta[i] = branch * nu[i] * dphi2[i] * grad[i]
        if i > 0:
            grad[i - 1] = grad[i] + sw2[i] * sizes[i + 1] / sizes[i] * delta[i]
    chi = np.full(L, np.nan)
    chi[:-1] = delta[:-1] / delta[1:]
    return {"preact_var": q, "act_mean": m, "act_ms": p, "act_var": act_var, "growth": growth,
            "sigma_w2": sw2, "chi": chi, "delta_ms": delta, "grad_ms": grad}
