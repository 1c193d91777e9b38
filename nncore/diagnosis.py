"""Per-layer diagnosis of one probe: which hidden layers vanish, explode, saturate, die or stay
symmetric, and whether a run trained. NumPy in, flags out, so that a job can run it on the
statistics of ``MLP.probe`` ({stat: array over layers 1..L}) and the report on the same numbers.

Flags of hidden layer l (1..L-1; L is the linear output layer, n_l its width):

  vanishing   the back-propagated error or the relative gradient r_l = ||dL/dW_l|| / ||W_l||
              shrinks toward the input, relative to the top hidden layer L-1 (or, where that
              layer's value is 0, the nearest layer below with a positive one: the dead top
              branch of a residual net), by more than e^DEPTH_SCALES in mean square; or r_l lies below the floor at which gradient
              descent through W_l alone, at the run's step size for the run's number of steps,
              would lower the loss by less than FROZEN of its value (first order: by
              steps * lr_eff * ||dL/dW_l||^2, i.e. r_l < sqrt(FROZEN loss / (steps lr_eff)) / ||W_l||).
  exploding   the same error or relative gradient grows toward the input by more than
              e^DEPTH_SCALES in mean square; or one step would change W_l by more than
              its own norm; or a statistic of the layer is not finite (overflow).
  saturated   more than SATURATED of the layer's unit-examples have phi' below 10% of max phi'.
  dead        more than DEAD of the layer's units are saturated on every probe example:
              the layer (and with it the network) has nearly stopped passing signal.
  symmetric   unit_spread below SYMMETRIC: the units of the layer are identical.

Why relative to the top hidden layer, not the output layer: the output layer's error has
another width (n_L classes) and no phi', so even a critical network changes delta_ms by a
constant factor between L and L-1 (He/ReLU, width 64, 10 classes: x0.16).

Why both signals: the first-to-last weight-gradient ratio is blind when the forward signal
(a_(l-1)) and the backward error (delta_l) vanish together, because dL/dW_l = a_(l-1)^T delta_l
keeps their product flat (Glorot & Bengio 2010, sec. 4.2.2). The error ratio sees the backward
half; the floor on the size of the update sees the product, whatever its profile.

The floor is relative to the loss still to be lost: a network that has learned its training
set has small gradients because its loss is small, which is not a pathology; gradients that
cannot move a loss of 2.3 (chance on 10 classes) are. The step size: the update of W_l over the
run is at most ``steps`` * lr_eff * ||dL/dW_l||, with lr_eff = lr for rules that follow the gradient (sgd; pass lr / (1 - momentum) for
momentum) and, for the adaptive rules (adam, rmsprop, adagrad, adadelta: ``adaptive_eps``
= their eps), lr / (rms entry of dL/dW_l + eps): they scale each entry to about lr
unless the gradient is far below eps. The floor and the ceiling use the gradient of the
probe as if it stayed that size: a prediction from one probe, not a measurement of the run.

Trainability of a run (``trainability``): ``diverged`` when the loss or gradients became
non-finite; else ``stalled`` when the final validation accuracy is within STALL_ACCURACY of
the way from the majority-class rate to 1 above that rate, or the probe loss fell by less
than STALL_LOSS_FALL of its initial value; else ``trained``.
"""
import numpy as np

from .checks import number

FLAGS = ("vanishing", "exploding", "saturated", "dead", "symmetric")
TRAINABILITY = ("trained", "stalled", "diverged")

# ---- thresholds: each with its reason (chi, the depth scale xi, what an update does) ------------
# A mean-square ratio of e^-6: the layer is more than 6 depth scales xi = -1/ln chi below the top
# hidden layer, beyond which Schoenholz et al. (2017) find networks untrainable; it is also 3
# standard deviations of finite-width noise for He/ReLU at depth 50, width 64 (var ln ~ 5 L/n).
DEPTH_SCALES = 6.0
# Gradient descent through the layer over the whole run would lower the loss by less than 1%
# (first order, if the gradient stayed this size): the layer cannot take part in learning. The
# healthy runs of the default study sit at 0.13 or more (converged ones included), ReLU +
# uniform at depth 50 at 1e-41.
FROZEN = 0.01
# One step changing W_l by more than its own norm: the next probe sees a different network.
EXPLODING_STEP = 1.0
# With s > 0.9 of unit-examples below 0.1 max phi', E[phi'^2] < (0.1 + 0.01 * 0.9) max phi'^2, so
# chi < 0.11 sigma_w^2 max phi'^2: even He's sigma_w^2 = 2 loses 4.6x per layer. ReLU's inactive
# half (He: 0.44-0.62) is far below.
SATURATED = 0.9
# More than 90% of units inactive on every example: at most a tenth of the width carries any
# signal (Lu et al. 2019, dying ReLU: a dead layer makes the network constant). He/ReLU at
# depth 20, width 64 trains with 45% of some layers dead, half this threshold.
DEAD = 0.9
# Identical units get identical gradients and stay identical; the probe computes unit_spread
# of identical units as exactly 0 and of near-identical ones to ~1e-8; random inits give ~1.
SYMMETRIC = 1e-6
# Stalled: less than a tenth of the possible gain over always predicting the majority class
# (digits: 0.10 -> below 0.19), or the probe loss fell by less than a tenth.
STALL_ACCURACY = 0.1
STALL_LOSS_FALL = 0.1
ADAPTIVE_OPTIMIZERS = ("adam", "rmsprop", "adagrad", "adadelta")  # scale updates per entry

REQUIRED = ("grad_norm", "weight_norm", "delta_ms", "saturation", "dead_frac")
OPTIONAL = ("unit_spread",)  # runs logged before it existed get no symmetric flag


def _array(stats, name, n):
    values = np.asarray(stats[name], dtype=np.float64)
    if values.shape != (n,):
        raise ValueError(f"stats[{name!r}] must have one value per layer ({n}), got shape {values.shape}")
    return values


def _ln(values):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(values)


def _relative_to_top(ln_values, top):
    """``ln_values`` minus that of the reference layer: the top hidden layer ``top``, or where its
    value is 0 or not finite the nearest layer below it with a finite ln (all NaN without one)."""
    finite = np.flatnonzero(np.isfinite(ln_values[:top + 1]))
    return ln_values - (ln_values[finite[-1]] if finite.size else np.nan)


def effective_lr(lr, optimizer="sgd", momentum=0.0, eps=1e-8, grad_rms=None):
    """The step per unit of gradient of ``optimizer`` (see the module docstring): lr / (1 -
    momentum) for sgd-like rules; lr / (grad_rms + eps) per layer for the adaptive ones."""
    lr = number("lr", lr, low=0.0, strict=True)
    if optimizer in ADAPTIVE_OPTIMIZERS:  # momentum is part of their rule, not a step multiplier
        if grad_rms is None:
            raise ValueError("an adaptive optimizer needs grad_rms (rms entry of each layer's gradient)")
        return lr / (np.asarray(grad_rms, dtype=np.float64) + eps)
    return lr / (1.0 - momentum)


def diagnose(stats, loss, steps, lr, optimizer="sgd", momentum=0.0, eps=1e-8, fan=None):
    """{flag: bool array over hidden layers 1..L-1} from one probe's ``stats``.

    ``stats`` is ``MLP.probe``'s {stat: array over layers 1..L}; ``loss`` the probe's loss
    (``net.probe_loss``; NaN leaves the floor of the vanishing flag out); ``steps`` the run's number of
    optimizer steps; ``lr``, ``optimizer``, ``momentum``, ``eps`` its update rule (see
    ``effective_lr``); ``fan`` the number of entries of each W_l (fan_in * fan_out), which the
    adaptive rules need for the rms entry of the gradient.
    """
    missing = [name for name in REQUIRED if name not in stats]
    if missing:
        raise ValueError(f"stats lack {', '.join(missing)} (need {', '.join(REQUIRED)})")
    n = len(np.asarray(stats["grad_norm"]))
    if n < 2:
        raise ValueError(f"need at least one hidden layer and the output layer, got {n} layer(s)")
    if not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    grad, weight, delta = (_array(stats, name, n) for name in ("grad_norm", "weight_norm", "delta_ms"))
    saturation, dead_frac = (_array(stats, name, n) for name in ("saturation", "dead_frac"))
    spread = _array(stats, "unit_spread", n) if "unit_spread" in stats else np.full(n, np.nan)
    grad_rms = None
    if optimizer in ADAPTIVE_OPTIMIZERS:
        if fan is None:
            raise ValueError(f"optimizer {optimizer!r} needs fan (entries of each W_l)")
        grad_rms = grad / np.sqrt(np.asarray(fan, dtype=np.float64))
    lr_eff = effective_lr(lr, optimizer, momentum, eps, grad_rms)
    hidden = slice(0, n - 1)
    top = n - 2  # the top hidden layer
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = grad / weight
        step_change = lr_eff * relative            # relative change of W_l in one step
        ln_delta = _relative_to_top(_ln(delta), top)
        ln_relative2 = 2.0 * _relative_to_top(_ln(relative), top)
    finite = np.all([np.isfinite(np.asarray(stats[name], dtype=np.float64)) for name in REQUIRED], axis=0)
    with np.errstate(invalid="ignore"):
        shrinks = (ln_delta < -DEPTH_SCALES) | (ln_relative2 < -DEPTH_SCALES)
        grows = (ln_delta > DEPTH_SCALES) | (ln_relative2 > DEPTH_SCALES)
        frozen = (max(steps, 1) * lr_eff * grad * grad < FROZEN * loss) if np.isfinite(loss) and loss > 0 \
            else np.zeros(n, dtype=bool)
        huge = step_change > EXPLODING_STEP
    flags = {
        "vanishing": finite & (shrinks | frozen),
        "exploding": ~finite | (finite & (grows | huge)),
        "saturated": finite & (saturation > SATURATED),
        "dead": finite & (dead_frac > DEAD),
        "symmetric": finite & (np.nan_to_num(spread, nan=np.inf) < SYMMETRIC),
    }
    return {flag: np.asarray(values[hidden], dtype=bool) for flag, values in flags.items()}


def flag_set(flags):
    """The run-level tag: sorted, comma-separated flags raised in any layer, or "none"."""
    raised = sorted(flag for flag, values in flags.items() if np.any(values))
    return ",".join(raised) if raised else "none"


def majority_rate(labels):
    """Share of the most frequent class in ``labels`` (integer class labels)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("majority_rate needs at least one label")
    return float(np.unique(labels, return_counts=True)[1].max() / labels.size)


def trainability(diverged, final_accuracy, majority, initial_loss, final_loss):
    """"trained", "stalled" or "diverged" (see the module docstring). A NaN accuracy or loss
    (not measured) leaves that criterion out."""
    if diverged:
        return "diverged"
    if np.isfinite(final_accuracy) and np.isfinite(majority):
        if final_accuracy <= majority + STALL_ACCURACY * (1.0 - majority):
            return "stalled"
    if np.isfinite(initial_loss) and np.isfinite(final_loss) and initial_loss > 0:
        if initial_loss - final_loss < STALL_LOSS_FALL * initial_loss:
            return "stalled"
    return "trained"


# ---- through time: the flags of a recurrent network's time steps (RNN.probe's (K, T) statistics) ----
TIME_FLAGS = ("vanishing", "exploding", "saturated", "dead")
TIME_REQUIRED = ("delta_ms", "saturation")
TIME_OPTIONAL = ("dead_frac",)  # without it (runs logged before it existed) no step is flagged dead


def diagnose_through_time(stats):
    """{flag: bool array (K, T)} for the time steps t = 1..T of each stacked layer k, from
    ``RNN.probe``'s {stat: array (K, T)} (``nncore.probes_recurrent``).

    The MLP's flags with the MLP's thresholds, the last step T in the role of the top hidden layer
    (the step the readout reads; where its delta_ms is 0 or not finite, the nearest earlier step
    with a positive one): step t is ``vanishing`` when its error's mean square delta_ms lies more
    than e^DEPTH_SCALES below step T's, ``exploding`` when above, or when a statistic of the step
    is not finite; ``saturated`` and ``dead`` as for a layer (SATURATED of the unit-examples, DEAD
    of the units; for LSTM and GRU, of the gate units). There is no ``symmetric`` flag (a property
    of the weights, not of a step) and no floor or ceiling on the update: W_hh is one matrix for
    every step, so its update belongs to the layer, not to a step. The weight-gradient ratio of the
    MLP's flags is left out too: step t's term h_(t-1)^T da_t is 0 at t = 1 by construction (h_0 = 0).
    """
    missing = [name for name in TIME_REQUIRED if name not in stats]
    if missing:
        raise ValueError(f"stats lack {', '.join(missing)} (need {', '.join(TIME_REQUIRED)})")
    delta = np.asarray(stats["delta_ms"], dtype=np.float64)
    if delta.ndim != 2 or delta.shape[1] < 1:
        raise ValueError(f"stats['delta_ms'] must have shape (layers, steps), got {delta.shape}")
    saturation = np.asarray(stats["saturation"], dtype=np.float64)
    dead_frac = np.asarray(stats["dead_frac"], dtype=np.float64) if "dead_frac" in stats else np.zeros_like(delta)
    for name, values in (("saturation", saturation), ("dead_frac", dead_frac)):
        if values.shape != delta.shape:
            raise ValueError(f"stats[{name!r}] must have shape {delta.shape} like delta_ms, got {values.shape}")
    ln_delta = np.array([_relative_to_top(_ln(row), row.size - 1) for row in delta])
    finite = np.isfinite(delta) & np.isfinite(saturation) & np.isfinite(dead_frac)
    with np.errstate(invalid="ignore"):
        flags = {
            "vanishing": finite & (ln_delta < -DEPTH_SCALES),
            "exploding": ~finite | (finite & (ln_delta > DEPTH_SCALES)),
            "saturated": finite & (saturation > SATURATED),
            "dead": finite & (dead_frac > DEAD),
        }
    return flags
