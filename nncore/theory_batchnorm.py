"""Mean-field theory of normalized networks at initialization: BatchNorm (Yang et al. 2019)
and LayerNorm, in the conventions of ``MLP(..., norm="batch" | "layer")`` without residuals.

Setting. Hidden layers l = 1..L-1: z_l = a_(l-1) W_l + b_l, u_l = Norm(z_l), a_l = phi(u_l);
output z_L = a_(L-1) W_L + b_L. W_l has i.i.d. zero-mean entries of variance sigma_w^2 / n_(l-1).
Norm is at initialization (gamma = 1, beta = 0), with eps inside the square root:
  BatchNorm (torch.nn.BatchNorm1d in training mode, as the probes run it): per unit, over the
            batch, u = (z - mean_batch z) / sqrt(var_batch z + eps) (biased variance);
  LayerNorm (torch.nn.LayerNorm): per example, over the units, the same with row statistics.

BatchNorm: the gradient explosion. In the limit of large width and large batch (Yang, Pennington,
Rao, Sohl-Dickstein & Schoenholz 2019, "A Mean Field Theory of Batch Normalization", ICLR; the
short derivation below follows K. Luther's 2020 note "Batch Norm causes exploding gradients"):
each unit's u over the batch is N(0, 1) (exactly standardized, Gaussian as a sum over many
units), so a = phi(u) has batch variance V = Var[phi(u)] in every unit, and the next layer's
z_j = sum_i a_i W_ij has batch variance v = sigma_w^2 V (W zero-mean: cross-unit covariances
cancel; it is self-averaging over units at large width and batch). Backward, BatchNorm's
Jacobian is (1/sqrt(v + eps)) (I - 1 1^T/B - u u^T/B) per unit: it divides by the batch
standard deviation and projects out two of B directions, which a gradient independent of u
(the gradient-independence assumption) loses only a fraction 2/B of. So

  E[delta_l^2] / E[delta_(l+1)^2] = sigma_w^2 (n_(l+1)/n_l) E[phi'(u_l)^2] / (v_l + eps)

and between hidden layers of equal width, with eps -> 0, the growth rate toward the input is

  lambda = E[phi'(u)^2] / Var[phi(u)],   u ~ N(0, 1)                  (``batchnorm_rate``)

independent of sigma_w^2 and sigma_b^2 (BatchNorm is scale invariant and removes the bias).
By the Gaussian Poincare inequality Var[phi(u)] <= E[phi'(u)^2], so lambda >= 1, with equality
only for linear phi: no activation and no initialization removes the explosion, only a nearly
linear phi reduces it, as Yang et al. state. Closed forms from the activation's Gaussian gains
(k1, k2, k3) = (E[phi^2], E[phi'^2], E[phi]) at unit variance (``gaussian_gains()``, the
piecewise-linear ones): lambda = k2 / (k1 - k3^2). relu E[phi'^2] = 1/2, Var phi = 1/2 - 1/(2 pi),
so lambda = pi/(pi - 1) = 1.4669...; leaky_relu (slope alpha)
lambda = 1 / (1 - (1 - alpha)^2 / (pi (1 + alpha^2))); identity 1. Others by quadrature
(``theory.moments`` at q = 1): tanh 1.178, sigmoid 1.034, softsign 1.244.
Limits of the formula: at finite batch B and width n the measured rate exceeds lambda by
O(1/min(n, B)) (1/v averaged over units is larger than 1/average v), and more when the batch's
activations have low rank (e.g. inputs of dimension < B through a nearly linear network);
Yang et al.'s exact finite-B rates are not implemented here. Weight-gradient norms grow by
the same lambda per layer (||dL/dW_l||^2 ~ E[a_(l-1)^2] E[delta_l^2] and E[a^2] is the same in
every BatchNorm layer).

LayerNorm. We rely on no published mean-field result for LayerNorm MLPs; the following is the
same mean-field (gradient-independence) calculation and is checked against a Monte Carlo in
tests/nncore/test_theory_batchnorm.py. For one example, z_l's entries over units are i.i.d. given
a_(l-1), N(0, q_l) with q_l = sigma_w^2 E[a_(l-1)^2] + sigma_b^2 (the row mean is O(1/sqrt(n))),
so u_l ~ N(0, q_l/(q_l + eps)) in every layer: the forward signal is fixed (q_l = sigma_w^2
E[phi(u)^2] + sigma_b^2 for l >= 2) whatever the depth. LayerNorm's Jacobian divides by the row
standard deviation sqrt(q_l + eps) and projects out two of n directions, so

  E[delta_l^2] / E[delta_(l+1)^2] = sigma_w^2 (n_(l+1)/n_l) E[phi'(u_l)^2] / (q_l + eps),

and between hidden layers of equal width, at sigma_b^2 = 0 and eps -> 0,

  chi_LN = E[phi'(u)^2] / E[phi(u)^2],   u ~ N(0, 1)                 (``layernorm_rate``)

also independent of sigma_w^2. It is the *mean square* E[phi^2], not the variance, that
enters: LayerNorm does not remove a common mean of a_(l-1) across units (the next W spreads it
into z's variance). With closed-form gains chi_LN = k2 / k1, which is 1 for every positively
homogeneous phi (E[phi'^2] = E[phi^2] at unit variance): relu, leaky_relu and identity are
critical; tanh
E[phi'^2]/E[phi^2] = 1.178 (= lambda, its mean is 0); sigmoid 0.153: LayerNorm before a sigmoid
leaves its gradients vanishing by a factor ~6.5 per layer.

Everything here is a prediction for the ensemble over initializations at infinite width (and
batch), for inputs whose per-example mean square is ``input_ms`` (LayerNorm's layer 1) and whose
per-feature batch variance averages to ``input_var`` (BatchNorm's layer 1).
"""
import numpy as np

from . import activations, theory
from .checks import number

__all__ = ["NORMS", "batchnorm_rate", "layernorm_rate", "predict"]

NORMS = ("batch", "layer")


def _activation(activation):
    """The instance itself, or the named activation with its default parameters."""
    return activations.get(activation)  # ValueError listing the valid names


def batchnorm_rate(activation):
    """lambda = E[phi'(u)^2] / Var[phi(u)], u ~ N(0, 1): E[delta_l^2] / E[delta_(l+1)^2] between
    BatchNorm layers at large width and batch (eps -> 0), from ``theory.moments`` at q = 1: closed
    forms give k2 / (k1 - k3^2) (relu pi / (pi - 1) exactly), quadrature the others."""
    act = _activation(activation)
    mean, ms, dms = theory.moments(act, 1.0)
    return dms / (ms - mean * mean)


def layernorm_rate(activation):
    """chi_LN = E[phi'(u)^2] / E[phi(u)^2], u ~ N(0, 1): E[delta_l^2] / E[delta_(l+1)^2] between
    LayerNorm layers at large width, sigma_b^2 = 0, eps -> 0, from ``theory.moments`` at q = 1:
    closed forms give k2 / k1, exactly 1 for relu, leaky_relu and identity (positively
    homogeneous: E[phi'^2] = E[phi^2] at unit variance), quadrature the others."""
    act = _activation(activation)
    _, ms, dms = theory.moments(act, 1.0)
    return dms / ms


def predict(sizes, activation, init, norm, input_ms, input_var=None, sigma_b2=0.0,
            init_params=None, eps=1e-5):
    """Mean-field prediction of ``MLP(..., norm=norm).probe`` statistics at initialization.

    ``sizes`` = MLP.sizes [n_in, hidden..., n_out]; ``norm`` "batch" or "layer"; ``input_ms`` =
    mean(x^2); ``input_var`` = the per-feature batch variance of x averaged over features (BatchNorm's
    layer 1; defaults to ``input_ms``, right for standardized features); ``sigma_b2`` = MLP's
    sigma_b ** 2; ``eps`` the norm's eps; ``activation`` a name or an instance. Returns arrays over
    layers l = 1..L (index l-1):

      preact_var  variance of z_l over batch and units (= its second moment sigma_w^2 E[a^2] + sigma_b^2)
      norm_var    the variance the norm divides by: per-unit batch variance sigma_w^2 Var_batch(a_(l-1))
                  (BatchNorm) or per-example row variance (LayerNorm) of z_l; nan for L
      act_mean    E[phi(u_l)] for hidden layers; 0 for the output layer
      act_var     Var[phi(u_l)] for hidden layers; preact_var for the output layer
      sigma_w2    sigma_w^2 of W_l
      chi         E[delta_l^2] / E[delta_(l+1)^2]
                    = sigma_w2_(l+1) (n_(l+1)/n_l) E[phi'(u_l)^2] / (norm_var_l + eps); nan for L
      delta_ms    E[delta_l^2] / E[delta_L^2]; compare with probe's delta_ms / delta_ms[-1]
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    sizes = [int(n) for n in sizes]
    if len(sizes) < 3 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must be [n_in, hidden..., n_out] with >= 1 hidden layer, got {sizes}")
    act = _activation(activation)
    input_ms = number("input_ms", input_ms, low=0.0)
    input_var = input_ms if input_var is None else number("input_var", input_var, low=0.0)
    sigma_b2 = number("sigma_b2", sigma_b2, low=0.0)
    eps = number("eps", eps, low=0.0)
    init_params = dict(init_params or {})
    L = len(sizes) - 1
    sw2 = np.array([theory.sigma_w2(init, sizes[l - 1], sizes[l], **init_params) for l in range(1, L + 1)])

    q, v = np.empty(L), np.full(L, np.nan)
    act_mean, act_var, dphi2 = np.zeros(L), np.empty(L), np.empty(L)
    ms_prev, var_prev = input_ms, input_var
    for i in range(L):
        q[i] = sw2[i] * ms_prev + sigma_b2
        if i == L - 1:
            act_var[i] = q[i]
            break
        v[i] = sw2[i] * var_prev if norm == "batch" else q[i]
        mean, ms, dphi2[i] = theory.moments(act, v[i] / (v[i] + eps))
        act_mean[i], act_var[i] = mean, max(ms - mean * mean, 0.0)
        ms_prev, var_prev = ms, act_var[i]
    chi = np.full(L, np.nan)
    delta = np.ones(L)
    for i in range(L - 2, -1, -1):
        chi[i] = sw2[i + 1] * sizes[i + 2] / sizes[i + 1] * dphi2[i] / (v[i] + eps)
        delta[i] = chi[i] * delta[i + 1]
    return {"preact_var": q, "norm_var": v, "act_mean": act_mean, "act_var": act_var,
            "sigma_w2": sw2, "chi": chi, "delta_ms": delta}
