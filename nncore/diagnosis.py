"""Per-layer diagnosis of one probe: which hidden layers vanish, explode, saturate, die or stay
symmetric (the network), whether the run's optimizer steps could move them at all (the budget),
and whether a run trained. NumPy in, flags out, so that a job can run it on the statistics of
``MLP.probe`` ({stat: array over layers 1..L}).

Two questions, two functions:

  diagnose(stats)                              what the network is at that probe: FLAGS
  budget(stats, loss, steps, optimizer, fan)   what the run's optimizer steps can do with its
                                               gradients: BUDGET_FLAGS (None: not judged)

``diagnose`` reads the per-layer profiles and nothing else: no optimizer, learning rate or
step count enters it, so two runs with the same weights at step 0 get the same flags.

Flags of hidden layer l (1..L-1; L is the linear output layer, n_l its width):

  vanishing   the back-propagated error or the relative gradient r_l = ||dL/dW_l|| / ||W_l||
              shrinks toward the input, relative to the top hidden layer L-1 (or, where that
              layer's value is 0, the nearest layer below with a positive one: the dead top
              branch of a residual net), by more than e^DEPTH_SCALES in mean square.
  exploding   the same error or relative gradient grows toward the input by more than
              e^DEPTH_SCALES in mean square; or a statistic of the layer is not finite (overflow).
  saturated   more than SATURATED of the layer's unit-examples have phi' below 10% of max phi'.
  dead        more than DEAD of the layer's units are saturated on every probe example:
              the layer (and with it the network) has nearly stopped passing signal.
  symmetric   unit_spread below SYMMETRIC: the units of the layer are identical.

Budget flag of hidden layer l, judged only for a run with optimizer steps and a finite
positive probe loss:

  frozen      gradient descent through W_l alone, over the run's ``steps`` optimizer steps at
              its effective step size, would lower the loss by less than FROZEN of its value.

Why relative to the top hidden layer, not the output layer: the output layer's error has
another width (n_L classes) and no phi', so even a critical network changes delta_ms by a
constant factor between L and L-1 (He/ReLU, width 64, 10 classes: x0.16).

Why both profiles: the first-to-last weight-gradient ratio is blind when the forward signal
(a_(l-1)) and the backward error (delta_l) vanish together, because dL/dW_l = a_(l-1)^T delta_l
keeps their product flat (Glorot & Bengio 2010, sec. 4.2.2). The error ratio sees the backward
half (ReLU + uniform at depth 50: x6 per layer), whatever the optimizer.

The effective step (``travel``): each entry of W_l is given the layer's rms gradient entry
g_l = ||dL/dW_l|| / sqrt(fan_l), held constant (the probe's gradient as if it stayed that size),
and the run's own rule (its class, hyperparameters and eps, from a fresh state) is stepped
``steps`` times on it: D_l is how far the entry moved. The loss then falls, to first order, by
fan_l * g_l * D_l (exact for sgd, where it is steps * lr * ||dL/dW_l||^2); frozen when that is
below FROZEN * loss. So Adadelta's first steps are lr sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g
(about lr sqrt(10 eps) per entry, whatever g: 3.2e-3 at its default lr 1), Adagrad's shrink as 1/sqrt(t) with its eps 1e-10,
Adam's are lr g / (g + eps), momentum's grow to lr / (1 - momentum). Global-norm clipping
(clip_norm) scales the gradient first, with the total norm of the probe's weight and bias
gradients; weight decay is left out (it pulls toward 0, not down the loss). A prediction from
one probe, not a measurement of the run.

Trainability of a run (``trainability``): ``diverged`` when the loss or gradients became
non-finite; else NOT_JUDGED ("n/a") when the run made no optimizer step (train.epochs=0); else
``stalled`` when the final validation accuracy is within STALL_ACCURACY of the way from the
majority-class rate to 1 above that rate, or the probe loss fell by less than STALL_LOSS_FALL of
its initial value; else ``trained``.
"""
import numpy as np

from .checks import integer

FLAGS = ("vanishing", "exploding", "saturated", "dead", "symmetric")
BUDGET_FLAGS = ("frozen",)
TRAINABILITY = ("trained", "stalled", "diverged")
NOT_JUDGED = "n/a"  # flag_set of a budget that was not judged (no optimizer steps, no loss)

# ---- thresholds: each with its reason (chi, the depth scale xi, what an update does) ------------
# A mean-square ratio of e^-6: the layer is more than 6 depth scales xi = -1/ln chi below the top
# hidden layer, beyond which Schoenholz et al. (2017) find networks untrainable; it is also 3
# standard deviations of finite-width noise for He/ReLU at depth 50, width 64 (var ln ~ 5 L/n).
DEPTH_SCALES = 6.0
# Gradient descent through the layer over the whole run would lower the loss by less than 1%
# (first order, if the gradient stayed this size): the run's steps cannot make the layer take part
# in learning. Relative to the loss still to lose, so a converged network's small gradients are
# not frozen; gradients that cannot move a loss of 2.3 (chance on 10 classes) are.
FROZEN = 0.01
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
# travel: a step within this relative distance of the previous one is the rule's steady step,
# repeated for the remaining steps (sgd from step 2, adam from about step 2, momentum by ~350).
STEADY = 1e-12

REQUIRED = ("grad_norm", "weight_norm", "delta_ms", "saturation", "dead_frac")
OPTIONAL = ("unit_spread",)  # runs logged before it existed get no symmetric flag
BUDGET_OPTIONAL = ("bias_grad_norm",)  # with clip_norm: part of the total norm


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


def _layers(stats):
    """The number of layers L of ``stats``, checked: every required statistic present."""
    missing = [name for name in REQUIRED if name not in stats]
    if missing:
        raise ValueError(f"stats lack {', '.join(missing)} (need {', '.join(REQUIRED)})")
    n = len(np.asarray(stats["grad_norm"]))
    if n < 2:
        raise ValueError(f"need at least one hidden layer and the output layer, got {n} layer(s)")
    return n


def _finite(stats, n):
    return np.all([np.isfinite(_array(stats, name, n)) for name in REQUIRED], axis=0)


def diagnose(stats):
    """{flag: bool array over hidden layers 1..L-1} (FLAGS) from one probe's ``stats``
    (``MLP.probe``'s {stat: array over layers 1..L}): the network's own profiles only."""
    n = _layers(stats)
    grad, weight, delta = (_array(stats, name, n) for name in ("grad_norm", "weight_norm", "delta_ms"))
    saturation, dead_frac = (_array(stats, name, n) for name in ("saturation", "dead_frac"))
    spread = _array(stats, "unit_spread", n) if "unit_spread" in stats else np.full(n, np.nan)
    top = n - 2  # the top hidden layer
    with np.errstate(divide="ignore", invalid="ignore"):
        ln_delta = _relative_to_top(_ln(delta), top)
        ln_relative2 = 2.0 * _relative_to_top(_ln(grad / weight), top)
    finite = _finite(stats, n)
    with np.errstate(invalid="ignore"):
        shrinks = (ln_delta < -DEPTH_SCALES) | (ln_relative2 < -DEPTH_SCALES)
        grows = (ln_delta > DEPTH_SCALES) | (ln_relative2 > DEPTH_SCALES)
    flags = {
        "vanishing": finite & shrinks,
        "exploding": ~finite | (finite & grows),
        "saturated": finite & (saturation > SATURATED),
        "dead": finite & (dead_frac > DEAD),
        "symmetric": finite & (np.nan_to_num(spread, nan=np.inf) < SYMMETRIC),
    }
    return {flag: np.asarray(values[:n - 1], dtype=bool) for flag, values in flags.items()}


def travel(optimizer, grad, steps):
    """How far an entry moves in ``steps`` steps of ``optimizer``'s rule (an nncore.optimizers
    instance: its class and hyperparameters, eps included, from a fresh state; its own state is
    not touched) under a constant gradient ``grad`` (an array: one entry per layer)."""
    integer("steps", steps)
    rule = type(optimizer)(**optimizer.hyper)  # no clip_norm, no weight decay: see the module docstring
    g = np.array(grad, dtype=np.float64)
    p, state, total, previous = np.zeros_like(g), {}, np.zeros_like(g), None
    for t in range(1, steps + 1):
        state["step"] = t
        u = rule._update(p, g, state)
        total += u
        if previous is not None and np.all(np.abs(u - previous) <= STEADY * np.abs(u)):
            total += u * (steps - t)  # the steady step, repeated
            break
        previous = u
    return total


def budget(stats, loss, steps, optimizer, fan):
    """{flag: bool array over hidden layers 1..L-1} (BUDGET_FLAGS), or None when not judged: a
    run without optimizer steps (``steps`` 0: train.epochs=0) or without a finite positive
    ``loss`` (the probe's loss at that step). ``optimizer`` is the run's rule (an
    nncore.optimizers instance, read as ``travel`` does, with its clip_norm); ``fan`` the number
    of entries of each W_l (fan_in * fan_out), layers 1..L."""
    n = _layers(stats)
    integer("steps", steps)
    fan = np.asarray(fan, dtype=np.float64)
    if fan.shape != (n,) or not np.all(fan >= 1):
        raise ValueError(f"fan must give the entries (>= 1) of each of the {n} weight matrices, got {fan!r}")
    loss = float(loss)
    if steps == 0 or not np.isfinite(loss) or loss <= 0:
        return None
    grad = _array(stats, "grad_norm", n)
    finite = _finite(stats, n)
    rms = np.where(finite, grad, 0.0) / np.sqrt(fan)
    scale = 1.0
    if optimizer.clip_norm is not None:
        squares = np.where(finite, grad, 0.0) ** 2
        if "bias_grad_norm" in stats:
            squares = squares + np.nan_to_num(_array(stats, "bias_grad_norm", n), nan=0.0, posinf=0.0) ** 2
        scale = optimizer.clip_scale(np.sqrt(squares.sum()))
    moved = travel(optimizer, rms * scale, int(steps))
    with np.errstate(invalid="ignore"):
        frozen = finite & (fan * rms * moved < FROZEN * loss)
    return {"frozen": np.asarray(frozen[:n - 1], dtype=bool)}


def flag_set(flags):
    """The run-level tag: sorted, comma-separated flags raised in any layer, "none", or
    NOT_JUDGED for ``None`` (a budget that was not judged)."""
    if flags is None:
        return NOT_JUDGED
    raised = sorted(flag for flag, values in flags.items() if np.any(values))
    return ",".join(raised) if raised else "none"


def majority_rate(labels):
    """Share of the most frequent class in ``labels`` (integer class labels)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("majority_rate needs at least one label")
    return float(np.unique(labels, return_counts=True)[1].max() / labels.size)


def trainability(diverged, final_accuracy, majority, initial_loss, final_loss, steps=None):
    """"trained", "stalled" or "diverged" (see the module docstring). A NaN accuracy or loss
    (not measured) leaves that criterion out. A run of no optimizer step (``steps`` 0:
    train.epochs=0, the initialization only) neither trained nor stalled: NOT_JUDGED."""
    if diverged:
        return "diverged"
    if steps is not None:
        integer("steps", steps)
        if steps == 0:
            return NOT_JUDGED
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
