"""Losses on the network's output z_L (logits), each the batch mean as in torch.nn.

``loss.forward_backward(z, y) -> (loss, dL/dz)`` returns the mean loss and its gradient
with respect to z_L, a new array (the logits are not modified).
``loss.check_targets(y, n, n_out, dtype)`` validates the target array.

  cross_entropy  softmax cross-entropy on logits, integer labels of shape (N,);
                 torch.nn.CrossEntropyLoss.
  bce            binary cross-entropy of sigmoid(z), from logits, 0/1 targets (N, n_out);
                 torch.nn.BCEWithLogitsLoss (mean over batch and outputs).
  mse            mean of (z - y)^2 over batch and outputs; torch.nn.MSELoss.
"""
import numpy as np

from .checks import finite_in


class CrossEntropy:
    name = "cross_entropy"

    def check_targets(self, y, n, n_out, dtype=None):
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"cross_entropy targets must be integer labels of shape ({n},), got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
                raise ValueError(f"cross_entropy targets must be integer class labels, got dtype {y.dtype}")
            y = y.astype(np.int64)
        if n and (y.min() < 0 or y.max() >= n_out):
            raise ValueError(f"cross_entropy labels must lie in [0, {n_out}), got range [{y.min()}, {y.max()}]")
        return y

    def forward_backward(self, z, y):
        n = z.shape[0]
        rows = np.arange(n)
        shifted = np.subtract(z, z.max(axis=1, keepdims=True))
        # log-sum-exp on max-shifted logits: no overflow for any finite z
        picked = shifted[rows, y]  # fancy indexing copies
        np.exp(shifted, out=shifted)
        sums = shifted.sum(axis=1)
        loss = float(np.add.reduce(np.log(sums) - picked) / n)  # np.mean's sum and division, without its wrapper
        shifted /= sums[:, None]
        shifted[rows, y] -= 1.0
        shifted /= n
        return loss, shifted

    def accuracy(self, z, y):
        return np.count_nonzero(np.argmax(z, axis=1) == y) / y.size


class BCEWithLogits:
    name = "bce"

    def check_targets(self, y, n, n_out, dtype=None):
        y = np.asarray(y)
        if y.shape != (n, n_out):
            raise ValueError(f"bce targets must have shape ({n}, {n_out}), got {y.shape}")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("bce targets must be 0 or 1")
        return y

    def forward_backward(self, z, y):
        y = y.astype(z.dtype, copy=False)
        e = np.abs(z)
        np.negative(e, out=e)
        np.exp(e, out=e)  # e = exp(-|z|) in (0, 1]: nothing overflows
        sig_abs = np.reciprocal(1.0 + e)  # sigmoid(|z|)
        # sigmoid(z) = sigmoid(|z|) for z >= 0 and e sigmoid(|z|) = e / (1 + e) for z < 0, which
        # keeps its precision where it is tiny (1 - sigmoid(|z|) would cancel to 0 from z = -37)
        sig = np.where(z >= 0, sig_abs, e * sig_abs)
        # max(z, 0) - z y + log(1 + exp(-|z|)): exact and overflow-free
        loss = float(np.mean(np.maximum(z, 0.0) - z * y + np.log1p(e)))
        sig -= y
        sig /= z.size
        return loss, sig

    def accuracy(self, z, y):
        return float(np.mean((z > 0) == (y > 0.5)))


class MSE:
    name = "mse"

    def check_targets(self, y, n, n_out, dtype=None):
        """``dtype``: the network's, in which the targets must be finite too."""
        y = np.asarray(y)
        if y.shape != (n, n_out):
            raise ValueError(f"mse targets must have shape ({n}, {n_out}), got {y.shape}")
        return finite_in(y, dtype, "mse targets", kinds="biuf")  # bool too

    def forward_backward(self, z, y):
        dz = np.subtract(z, y)
        loss = float(np.vdot(dz, dz) / z.size) if dz.flags.c_contiguous else float(np.mean(dz * dz))
        dz *= 2.0 / z.size
        return loss, dz

    def accuracy(self, z, y):
        """Fraction with argmax(z) == argmax(y): meaningful for one-hot targets."""
        if z.shape[1] < 2:
            return float("nan")
        return float(np.mean(np.argmax(z, axis=1) == np.argmax(y, axis=1)))


REGISTRY = {cls.name: cls for cls in (CrossEntropy, BCEWithLogits, MSE)}


def get(name):
    try:
        return REGISTRY[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
