"""Mean-field theory of a recurrent network at initialization: the hidden state's second moment
and the back-propagated error through time, in the conventions of ``nncore.recurrent``.

Setting (Elman cell, one layer, width H). a_t = x_t W_ih + h_(t-1) W_hh + b_ih + b_hh, h_t = phi(a_t),
h_0 = 0, t = 1..T; W_hh has i.i.d. zero-mean entries of variance sigma_w^2 / H, W_ih of variance
sigma_u^2 / n_in, the total bias b_ih + b_hh variance sigma_b^2 (``sigma_*`` are standard
deviations); ``input_ms`` = mean(x^2) over examples, steps and features. At infinite width every
a_t is Gaussian with mean 0 and second moment q_t:

  q_1 = sigma_u^2 input_ms + sigma_b^2                                    (h_0 = 0)
  q_t = sigma_w^2 E[phi(sqrt(q_(t-1)) z)^2] + sigma_u^2 input_ms + sigma_b^2,   z ~ N(0, 1):

the MLP's length map (``nncore.theory``) with the input's variance added at every step. The error
delta_t = dL/dh_t of the top layer, whose only source is the readout at t = T, obeys
delta_(t-1) = (phi'(a_t) * delta_t) W_hh^T, so

  E[delta_(t-1)^2] = chi_t E[delta_t^2],   chi_t = sigma_w^2 E[phi'(sqrt(q_t) z)^2],

and E[delta_t^2] / E[delta_T^2] = chi_(t+1) ... chi_T. Its square root is the per-step ratio of
the error's RMS; past the transient q_t -> q*, the fixed point, and the ratio -> sqrt(chi(q*)).
Piecewise-linear phi (relu, leaky_relu, identity) have a constant chi, and the profile is the
exact power chi^(T-t).

The approximation and its limits. W_hh is the same matrix at every step (tied weights). The
forward recursion treats the a_t as Gaussian with the statistics above, which holds at infinite
width despite the tying (Yang 2019, "Scaling limits of wide neural networks with weight sharing",
Tensor Programs I: RNNs are among the programs whose preactivations become Gaussian). The backward
recursion also treats the W_hh^T of the backward pass as independent of the W_hh of the forward
pass (the gradient independence, or untied-weight, approximation), as in the mean-field RNN theory
of Chen, Pennington & Schoenholz 2018 ("Dynamical isometry and a mean field theory of RNNs: gating
enables signal propagation in recurrent neural networks"); Yang 2019 states when it gives the
right limit. It predicts ensemble averages at infinite width: a network of width H deviates by
O(1/sqrt(H)) per step, and these deviations compound over T steps (so measure ratios per step, or
average over seeds). It says nothing of the error's correlations across steps, of a trained
network, or of non-random W_hh: ``identity`` (IRNN) has no mean-field description here.

Linear RNN with orthogonal W_hh (``linear_orthogonal``): for phi = identity and W_hh = rho Q, Q
orthogonal, delta_(t-1) = rho delta_t Q^T has exactly rho^2 times the squared norm of delta_t,
for every example and every Q: E[delta_t^2] / E[delta_T^2] = rho^(2(T-t)), no approximation.

LSTM and GRU: ``predict`` raises ``NoTheory`` (a ValueError) with the reason, see ``REASONS``.
Chen, Pennington & Schoenholz 2018 derive the mean field of the vanilla RNN and of their
minimalRNN only; Gilboa et al. 2019 ("Dynamical isometry and a mean field theory of LSTMs and
GRUs") extend it to LSTM and GRU, but their predictions are fixed points of coupled gate integrals
for inputs with time-invariant statistics and the spectrum of the state-to-state Jacobian there,
not a per-step profile of delta_ms, and nncore implements neither. So no line is drawn for them.
"""
import math

import numpy as np

from . import theory
from .checks import integer, number
from .recurrent import REGISTRY as CELLS

__all__ = ["NoTheory", "REASONS", "predict", "linear_orthogonal", "sigmas"]


class NoTheory(ValueError):
    """No prediction is drawn for this case; the message says why."""


REASONS = {
    "lstm": ("no mean-field prediction of the LSTM's error through time: Chen, Pennington & Schoenholz 2018 treat "
             "the vanilla RNN and the minimalRNN only, and Gilboa et al. 2019 give fixed points of coupled gate "
             "integrals and Jacobian spectra for time-invariant inputs, not a per-step delta_ms profile; nncore "
             "implements neither"),
    "gru": ("no mean-field prediction of the GRU's error through time: Chen, Pennington & Schoenholz 2018 treat the "
            "vanilla RNN and the minimalRNN only, and Gilboa et al. 2019 give fixed points of coupled gate integrals "
            "and Jacobian spectra for time-invariant inputs, not a per-step delta_ms profile; nncore implements "
            "neither"),
    "identity": ("no mean-field prediction for recurrent_init='identity': W_hh = gain I is not random (the theory "
                 "assumes i.i.d. zero-mean weights)"),
}


def predict(cell, activation, sigma_w, sigma_u, sigma_b, input_ms, T):
    """Mean-field prediction for a one-layer Elman RNN at initialization (module docstring):
    {"q": q_1..q_T, "chi": chi_1..chi_T, "delta_ms": E[delta_t^2] / E[delta_T^2] for t = 1..T},
    arrays of length T (index t-1). ``activation`` a name of ``nncore.activations`` or an instance
    (those of ``theory.supported()``). NoTheory for cells "lstm" and "gru"."""
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(CELLS)}")
    if cell in REASONS:
        raise NoTheory(REASONS[cell])
    sw2, su2, sb2 = (number(name, v, low=0.0) ** 2 for name, v in
                     (("sigma_w", sigma_w), ("sigma_u", sigma_u), ("sigma_b", sigma_b)))
    drive = su2 * number("input_ms", input_ms, low=0.0) + sb2
    T = integer("T", T, low=1)
    q = np.empty(T)
    q[0] = drive
    for t in range(1, T):
        q[t] = theory.length_map(activation, q[t - 1], sw2, 0.0) + drive
    chi = np.asarray(theory.chi(activation, q, sw2), dtype=np.float64)
    steps_to_T = np.arange(T - 1, -1, -1)
    if np.all(chi == chi[0]):  # piecewise-linear phi: an exact power
        delta_ms = chi[0] ** steps_to_T.astype(np.float64)
    else:  # chi_(t+1) ... chi_T, the empty product 1 at t = T
        delta_ms = np.append(np.cumprod(chi[:0:-1])[::-1], 1.0)
    return {"q": q, "chi": chi, "delta_ms": delta_ms}


def linear_orthogonal(rho, T):
    """E[delta_t^2] / E[delta_T^2] = rho^(2(T-t)), t = 1..T, for a linear RNN with W_hh = rho Q, Q
    orthogonal: exact for every example (module docstring)."""
    rho = number("rho", rho, low=0.0)
    return rho ** (2.0 * np.arange(integer("T", T, low=1) - 1, -1, -1))


def sigmas(n_in, hidden, init="pytorch", recurrent_init=None, init_params=None, recurrent_params=None, sigma_b=0.0):
    """(sigma_w, sigma_u, sigma_b) of an ``RNN(n_in, hidden, ...)`` built with these arguments, for
    ``predict``: sigma_w^2 = H Var(W_hh), sigma_u^2 = n_in Var(W_ih), sigma_b^2 = Var(b_ih + b_hh).

    init="pytorch": every entry U(+-1/sqrt(H)) of variance 1/(3H), so sigma_w^2 = 1/3,
    sigma_u^2 = n_in/(3H) and sigma_b^2 = 2/(3H) (two biases). Otherwise ``theory.sigma_w2`` of
    each gate block ((n_in, H) and (H, H)) and the RNN's sigma_b. NoTheory for "identity"."""
    init_params = dict(init_params or {})
    recurrent_init = init if recurrent_init is None else recurrent_init
    recurrent_params = dict(init_params if recurrent_params is None else recurrent_params)
    if recurrent_init in REASONS:
        raise NoTheory(REASONS[recurrent_init])

    def sw2(name, fan_in, params):
        if name == "pytorch":
            return fan_in / (3.0 * hidden)
        return theory.sigma_w2(name, fan_in, hidden, **params)

    sb2 = 2.0 / (3.0 * hidden) if init == "pytorch" else number("sigma_b", sigma_b, low=0.0) ** 2
    return (math.sqrt(sw2(recurrent_init, hidden, recurrent_params)), math.sqrt(sw2(init, n_in, init_params)),
            math.sqrt(sb2))
