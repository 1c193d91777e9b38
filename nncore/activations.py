"""Activation functions: the one home of each nonlinearity and of what theory needs of it.

An activation is a small object with
  ``forward(z, out=None)``        phi(z), elementwise;
  ``derivative(z, a, out=None)``  phi'(z), given z and the cached a = phi(z);
  ``backprop(dout, z, a)``        dout * phi'(z), what the backward pass needs (one pass fewer
                                  where an activation can fuse it); z is None when
                                  ``backprop_needs_z`` is False (phi' from a alone);
  ``max_derivative``              sup phi', the scale for ``saturation`` and ``dead_frac``;
  ``gaussian_gains()``            for the piecewise-linear ones, the closed-form Gaussian moments
                                  (E[phi(u)^2]/q, E[phi'(u)^2], E[phi(u)]/sqrt(q)) for u ~ N(0, q),
                                  which do not depend on q; None for the others, whose moments
                                  ``nncore.theory`` integrates from forward and derivative;
  ``sup_square``                  sup phi^2 (finite for the bounded ones, None otherwise): bounds
                                  the length map in ``theory.fixed_point``.
A new activation is its class here (added to REGISTRY) plus one YAML file in conf/activation/.

The derivative takes the cached output ``a`` because sigmoid and tanh are
cheapest (and computed as in torch's autograd) from it: the backward pass never
recomputes the forward.
"""
import math

import numpy as np


class Activation:
    name = "activation"
    max_derivative = 1.0
    sup_square = None
    backprop_needs_z = True

    def gaussian_gains(self):
        return None

    def forward(self, z, out=None):
        raise NotImplementedError

    def derivative(self, z, a, out=None):
        raise NotImplementedError

    def backprop(self, dout, z, a):
        """dout * phi'(z): the backward pass's product (fused where an activation can)."""
        return dout * self.derivative(z, a)

    def __call__(self, z, out=None):
        return self.forward(z, out=out)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    """phi(z) = 1 / (1 + exp(-z));  phi'(z) = phi(z) (1 - phi(z)), at most 1/4.

    Computed as exp(min(z, 0)) / (1 + exp(-|z|)): both exponents are <= 0, so nothing overflows
    for any z, and for z < 0 it is e^z / (1 + e^z), accurate where phi(z) is tiny. (Two exps
    and no masked ufunc: a ``where=`` multiply took 3/4 of the time.)
    """
    name = "sigmoid"
    max_derivative = 0.25
    sup_square = 1.0
    backprop_needs_z = False

    def forward(self, z, out=None):
        num = np.minimum(z, 0.0)
        np.exp(num, out=num)
        den = np.abs(z)
        np.negative(den, out=den)
        np.exp(den, out=den)
        den += 1.0
        return np.divide(num, den, out=num if out is None else out)

    def derivative(self, z, a, out=None):
        out = np.subtract(1.0, a, out=out)
        out *= a
        return out


class Tanh(Activation):
    """phi(z) = tanh(z);  phi'(z) = 1 - tanh(z)^2, at most 1."""
    name = "tanh"
    sup_square = 1.0
    backprop_needs_z = False

    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def derivative(self, z, a, out=None):
        out = np.multiply(a, a, out=out)
        np.subtract(1.0, out, out=out)
        return out


class ReLU(Activation):
    """phi(z) = max(z, 0);  phi'(z) = 1 for z > 0 and 0 otherwise (0 at the kink, as torch).
    backprop reads a = max(z, 0) instead: a > 0 exactly where z > 0 (NaN included)."""
    name = "relu"
    backprop_needs_z = False

    def gaussian_gains(self):
        return 0.5, 0.5, 1.0 / math.sqrt(2.0 * math.pi)

    def forward(self, z, out=None):
        return np.maximum(z, 0.0, out=out)

    def derivative(self, z, a, out=None):
        if out is None:
            return (z > 0).astype(z.dtype)
        np.greater(z, 0.0, out=out, casting="unsafe")
        return out

    def backprop(self, dout, z, a):
        return dout * (a > 0)


class LeakyReLU(Activation):
    """phi(z) = z for z > 0, alpha z otherwise;  phi'(z) = 1 for z > 0, alpha otherwise.

    The negative-side derivative is the constant alpha (not alpha z).
    """
    name = "leaky_relu"

    def __init__(self, alpha=0.01):
        alpha = float(alpha)
        if not (np.isfinite(alpha) and 0.0 <= alpha < 1.0):
            raise ValueError(f"leaky_relu alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha

    def gaussian_gains(self):
        k = 0.5 * (1.0 + self.alpha ** 2)
        return k, k, (1.0 - self.alpha) / math.sqrt(2.0 * math.pi)

    def forward(self, z, out=None):
        out = np.multiply(z, self.alpha, out=out)
        return np.maximum(z, out, out=out)  # max(z, alpha z) holds because alpha < 1

    def derivative(self, z, a, out=None):
        if out is None:
            out = np.empty_like(z)
        np.greater(z, 0.0, out=out, casting="unsafe")
        out *= 1.0 - self.alpha
        out += self.alpha
        return out

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class Softsign(Activation):
    """phi(z) = z / (1 + |z|);  phi'(z) = 1 / (1 + |z|)^2, at most 1."""
    name = "softsign"
    sup_square = 1.0

    def forward(self, z, out=None):
        d = np.abs(z)
        d += 1.0
        return np.divide(z, d, out=out)

    def derivative(self, z, a, out=None):
        out = np.abs(z, out=out)
        out += 1.0
        np.multiply(out, out, out=out)
        np.reciprocal(out, out=out)
        return out


class Identity(Activation):
    """phi(z) = z;  phi'(z) = 1."""
    name = "identity"

    def gaussian_gains(self):
        return 1.0, 1.0, 0.0

    def forward(self, z, out=None):
        if out is None:
            return z.copy()
        np.copyto(out, z)
        return out

    def derivative(self, z, a, out=None):
        if out is None:
            return np.ones_like(z)
        out.fill(1.0)
        return out


REGISTRY = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Softsign, Identity)}


def get(name, **kwargs):
    """Activation by name; ``kwargs`` are its parameters (``alpha`` for leaky_relu)."""
    if isinstance(name, Activation):
        return name
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad parameters for activation {name!r}: {exc}") from None
