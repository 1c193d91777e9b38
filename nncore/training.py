"""The training loop: seeded shuffled mini-batches, probes at step 0 and every k steps,
and a clean stop when the network diverges.

A *step* is one optimizer update; step 0 is the initialization, before any update.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .checks import integer
from .optimizers import global_norm
from .probes import check_bins, jacobian_probe
from .rng import generator


@dataclass
class ProbeRecord:
    """What the callback receives. ``stats`` is ``net.probe`` on the probe batch;
    ``histograms`` is filled at the steps in ``histogram_steps``, and at the last step when
    ``histogram_steps`` is not empty (else None);
    ``train_loss`` is the mean loss of the last training batch and ``train_grad_norm`` the global
    norm of its gradients, before clipping (both NaN at step 0);
    ``probe_loss`` and ``probe_accuracy`` are those of the probe batch (dropout off);
    ``jacobian`` is ``probes.jacobian_probe`` on the first ``jacobian_inputs`` probe rows at step 0
    and at the last step (else None)."""
    step: int
    epoch: int
    net: object
    stats: dict
    histograms: dict = None
    train_loss: float = float("nan")
    train_grad_norm: float = float("nan")
    final: bool = False
    probe_loss: float = float("nan")
    probe_accuracy: float = float("nan")
    jacobian: object = None


@dataclass
class TrainResult:
    steps: int                      # optimizer updates done
    diverged_step: int = None       # step whose loss, gradient or parameters were non-finite, else None
    train_losses: list = field(default_factory=list)  # mean batch loss at each step
    # the global norm of each training batch's gradients, before clipping (the diverging step's too)
    grad_norms: list = field(default_factory=list)
    clipped: list = field(default_factory=list)  # per update: whether the optimizer's clip_norm scaled it

    @property
    def diverged(self):
        return self.diverged_step is not None

    @property
    def clipped_fraction(self):
        """Fraction of the updates that were clipped (0 without clip_norm; NaN before any update)."""
        return sum(self.clipped) / len(self.clipped) if self.clipped else float("nan")


def n_steps(n_examples, batch_size, epochs):
    """Optimizer steps in ``epochs`` epochs (the last batch of an epoch may be smaller)."""
    return epochs * math.ceil(n_examples / batch_size)


def check_batchnorm_batches(norm, n_examples, batch_size, epochs):
    """ValueError when training with BatchNorm (``norm == "batch"``) would meet a batch of one
    example: batches of ``batch_size`` (at most ``n_examples``) leave n_examples % batch_size last."""
    batch_size = min(batch_size, n_examples)
    if norm == "batch" and epochs > 0 and min(batch_size, n_examples % batch_size or batch_size) == 1:
        raise ValueError(f"BatchNorm needs at least 2 examples in every training batch: {n_examples} examples in "
                         f"batches of {batch_size} leave a batch of 1; choose another batch_size")


def _steps(name, steps):
    """``steps`` (a collection of step numbers) as a set of ints >= 0; ValueError otherwise."""
    try:
        steps = set(steps)
    except TypeError:
        raise ValueError(f"{name} must be a collection of step numbers, got {steps!r}") from None
    bad = [s for s in steps if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise ValueError(f"{name} must hold integers >= 0, got {bad}")
    return {int(s) for s in steps}


def train(net, opt, X, y, *, epochs, batch_size, probe_X=None, probe_y=None, log_every=10,
          callback=None, histogram_steps=(), histogram_bins=64, seed=None, jacobian_inputs=0):
    """Train ``net`` with ``opt`` on (X, y).

    Batches are drawn without replacement from a permutation of the examples,
    reshuffled every epoch by the "shuffle" stream of ``seed`` (default: the
    network's seed). ``callback(ProbeRecord)`` runs at step 0, every ``log_every``
    steps, at the steps in ``histogram_steps`` and after the last step, with the
    probes of the probe batch (default: the first 256 training examples). A
    non-finite loss or gradient stops training and sets ``diverged_step``; so do
    non-finite parameters after the last update (there is no next loss to show it).
    ``jacobian_inputs`` > 0 adds the Jacobian probes (``probes.jacobian_probe``) of the first
    ``jacobian_inputs`` probe rows at step 0 and after the last step (a diverged run has only the
    first); none for a BatchNorm network, whose rows are coupled. No warning is emitted.
    """
    X, y = net.check_inputs(X, y)
    for name, value in (("epochs", epochs), ("log_every", log_every)):
        if not isinstance(value, (int, np.integer)) or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be an integer >= {0 if name == 'epochs' else 1}, got {value!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if (probe_X is None) != (probe_y is None):
        raise ValueError("give both probe_X and probe_y, or neither (the first 256 training examples)")
    if probe_X is None:
        probe_X, probe_y = X[:256], y[:256]
    probe_X, probe_y = net.check_inputs(probe_X, probe_y)
    check_bins(histogram_bins)
    jacobian_inputs = integer("jacobian_inputs", jacobian_inputs)
    if jacobian_inputs and not hasattr(net, "jacobian"):
        raise ValueError(f"jacobian_inputs needs a network with an input-output Jacobian (MLP), "
                         f"not {type(net).__name__}: give jacobian_inputs=0")
    jacobian_X = probe_X[:jacobian_inputs] if jacobian_inputs and net.norm != "batch" else None
    histogram_steps = _steps("histogram_steps", histogram_steps)
    rng = generator(net.seed if seed is None else seed, "shuffle")
    n = X.shape[0]
    batch_size = min(batch_size, n)
    check_batchnorm_batches(net.norm, n, batch_size, epochs)
    total = n_steps(n, batch_size, epochs)
    result = TrainResult(steps=0)

    def report(step, epoch, loss, gnorm, final=False):
        if callback is None:
            return
        if step in histogram_steps or (final and histogram_steps):
            stats, hists = net.probe_with_histograms(probe_X, probe_y, bins=histogram_bins)
        else:
            stats, hists = net.probe(probe_X, probe_y), None
        probe_loss, probe_accuracy = net.probe_loss, net.probe_accuracy
        jac = (jacobian_probe(net, jacobian_X, histogram_bins)
               if jacobian_X is not None and (step == 0 or final) else None)
        callback(ProbeRecord(step, epoch, net, stats, hists, loss, gnorm, final,
                             probe_loss, probe_accuracy, jac))

    with np.errstate(all="ignore"):
        report(0, 0, float("nan"), float("nan"), final=total == 0)
        step = 0
        for epoch in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                loss, grads = net.loss_and_grads(X[idx], y[idx], train=True)
                result.train_losses.append(loss)
                gnorm = global_norm(grads)
                result.grad_norms.append(gnorm)
                if not (math.isfinite(loss) and math.isfinite(gnorm)):
                    result.diverged_step = step
                    result.steps = step
                    return result
                opt.step(net, grads, total_norm=gnorm)
                result.clipped.append(opt.last_clipped)
                step += 1
                if step % log_every == 0 or step == total or step in histogram_steps:
                    report(step, epoch + 1 if start + batch_size >= n else epoch, loss, gnorm, final=step == total)
        result.steps = step
        if total and not all(np.isfinite(p).all() for p in net.parameters()):
            result.diverged_step = step
    return result
