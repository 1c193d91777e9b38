"""Activation functions: the one home of each nonlinearity and of what theory needs of it.

An activation is a small object with
  ``forward(z)``                  phi(z), elementwise, a new array;
  ``derivative(z, a)``            phi'(z), given z and the cached a = phi(z), a new array;
  ``backprop(dout, z, a)``        dout * phi'(z), what the backward pass needs (one pass fewer
                                  where an activation can fuse it); z is None when
                                  ``backprop_needs_z`` is False (phi' from a alone);
  ``max_derivative``              sup phi', the scale for ``saturation`` and ``dead_frac``;
  ``gaussian_gains()``            for the piecewise-linear ones, the closed-form Gaussian moments
                                  (E[phi(u)^2]/q, E[phi'(u)^2], E[phi(u)]/sqrt(q)) for u ~ N(0, q),
                                  which do not depend on q; None for the others, whose moments
                                  ``nncore.theory`` integrates from forward and derivative;
  ``gaussian_fourth_moment()``    E[phi(g)^4] for g ~ N(0, 1), in closed form (the piecewise-linear
                                  ones; None otherwise): the finite-width bands need it;
  ``sup_square``                  sup phi^2 (finite for the bounded ones, None otherwise): bounds
                                  the length map in ``theory.fixed_point``;
  ``bounds``                      (inf phi, sup phi) for the bounded ones (None otherwise): where
                                  ``probes``' near_lower_bound measures saturation at the bottom;
  ``params``                      {name: default} of the parameters it takes (leaky_relu's alpha;
                                  {} for most): ``Activation(**params)`` sets each as an attribute
                                  and rejects any other name; ``check_params`` validates values.
A new activation is its class here (added to REGISTRY) plus one YAML file in conf/activation/
(its name and its parameters' defaults): the experiments build it from that config group, and
theory, tests and analysis take their lists of names from REGISTRY.

Piecewise-linear activations (``PiecewiseLinear``) declare their two slopes once, phi(z) = p z
for z > 0 and n z for z < 0; every closed form follows from (p, n). They are positively
homogeneous, phi(s z) = s phi(z) for s > 0, so for u ~ N(0, q) and g ~ N(0, 1)
  E[phi(u)^2] = q (p^2 + n^2) / 2,   E[phi'(u)^2] = (p^2 + n^2) / 2,
  E[phi(u)] = sqrt(q) (p - n) / sqrt(2 pi),   E[phi(g)^4] = 3 (p^4 + n^4) / 2
(half of the Gaussian's mass on each side, where E[g^2; g > 0] = 1/2 and E[g^4; g > 0] = 3/2).

The derivative takes the cached output ``a`` because sigmoid and tanh are
cheapest (and computed as in torch's autograd) from it: the backward pass never
recomputes the forward. Every method allocates its result and works in place on the
temporaries it creates; none modifies its arguments.
"""
import math

import numpy as np


class Activation:
    name = "activation"
    params = {}          # {parameter name: default}; none for most activations
    max_derivative = 1.0
    sup_square = None
    bounds = None
    backprop_needs_z = True

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            takes = f"its parameters: {', '.join(sorted(self.params))}" if self.params else "it takes none"
            raise ValueError(f"activation {self.name!r} has no parameter(s) {', '.join(unknown)} ({takes})")
        for key, default in self.params.items():
            setattr(self, key, params.get(key, default))
        self.check_params()

    def check_params(self):
        """ValueError naming the parameter whose value is out of range (the classes that take any)."""

    def param_values(self):
        """{name: value} of this instance's parameters (``type(self)(**act.param_values())`` rebuilds it)."""
        return {key: getattr(self, key) for key in self.params}

    def gaussian_gains(self):
        return None

    def gaussian_fourth_moment(self):
        return None

    def forward(self, z):
        raise NotImplementedError

    def derivative(self, z, a):
        raise NotImplementedError

    def backprop(self, dout, z, a):
        """dout * phi'(z): the backward pass's product (fused where an activation can)."""
        d = self.derivative(z, a)
        if d.dtype != np.result_type(d, dout):  # in place only where it keeps the product's dtype
            return d * dout
        d *= dout
        return d

    def __call__(self, z):
        return self.forward(z)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.param_values().items())})"


class PiecewiseLinear(Activation):
    """phi(z) = p z for z > 0 and n z for z < 0, (p, n) = ``slopes``: the closed forms of the
    module docstring follow from the two slopes. Subclasses keep their own (faster) forward and
    derivative; tests check them against the slopes."""
    slopes = (1.0, 1.0)  # (positive side, negative side)

    @property
    def max_derivative(self):
        return max(abs(s) for s in self.slopes)

    def gaussian_gains(self):
        p, n = self.slopes
        k = 0.5 * (p * p + n * n)
        return k, k, (p - n) / math.sqrt(2.0 * math.pi)

    def gaussian_fourth_moment(self):
        p, n = self.slopes
        return 1.5 * (p ** 4 + n ** 4)


class Sigmoid(Activation):
    """phi(z) = 1 / (1 + exp(-z));  phi'(z) = phi(z) (1 - phi(z)), at most 1/4.

    Computed as exp(min(z, 0)) / (1 + exp(-|z|)): both exponents are <= 0, so nothing overflows
    for any z, and for z < 0 it is e^z / (1 + e^z), accurate where phi(z) is tiny. (Two exps
    and no masked ufunc: a ``where=`` multiply took 3/4 of the time.)
    """
    name = "sigmoid"
    max_derivative = 0.25
    sup_square = 1.0
    bounds = (0.0, 1.0)
    backprop_needs_z = False

    def forward(self, z):
        num = np.minimum(z, 0.0)
        np.exp(num, out=num)
        den = np.abs(z)
        np.negative(den, out=den)
        np.exp(den, out=den)
        den += 1.0
        return np.divide(num, den, out=num)

    def derivative(self, z, a):
        out = np.subtract(1.0, a)
        out *= a
        return out


class Tanh(Activation):
    """phi(z) = tanh(z);  phi'(z) = 1 - tanh(z)^2, at most 1."""
    name = "tanh"
    sup_square = 1.0
    bounds = (-1.0, 1.0)
    backprop_needs_z = False

    def forward(self, z):
        return np.tanh(z)

    def derivative(self, z, a):
        out = np.multiply(a, a)
        np.subtract(1.0, out, out=out)
        return out


class ReLU(PiecewiseLinear):
    """phi(z) = max(z, 0);  phi'(z) = 1 for z > 0 and 0 otherwise (0 at the kink, as torch).
    backprop reads a = max(z, 0) instead: a > 0 exactly where z > 0 (NaN included)."""
    name = "relu"
    slopes = (1.0, 0.0)
    backprop_needs_z = False

    def forward(self, z):
        return np.maximum(z, 0.0)

    def derivative(self, z, a):
        return (z > 0).astype(z.dtype)

    def backprop(self, dout, z, a):
        return dout * (a > 0)


class LeakyReLU(PiecewiseLinear):
    """phi(z) = z for z > 0, alpha z otherwise;  phi'(z) = 1 for z > 0, alpha otherwise.

    The negative-side derivative is the constant alpha (not alpha z).
    """
    name = "leaky_relu"
    params = {"alpha": 0.01}

    def check_params(self):
        alpha = self.alpha
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise ValueError(f"leaky_relu alpha must be a number in [0, 1), got {alpha!r}")
        alpha = float(alpha)
        if not (np.isfinite(alpha) and 0.0 <= alpha < 1.0):
            raise ValueError(f"leaky_relu alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha

    @property
    def slopes(self):
        return 1.0, self.alpha

    def forward(self, z):
        out = np.multiply(z, self.alpha)
        return np.maximum(z, out, out=out)  # max(z, alpha z) holds because alpha < 1

    def derivative(self, z, a):
        out = np.empty_like(z)
        np.greater(z, 0.0, out=out, casting="unsafe")
        out *= 1.0 - self.alpha
        out += self.alpha
        return out


class Softsign(Activation):
    """phi(z) = z / (1 + |z|);  phi'(z) = 1 / (1 + |z|)^2, at most 1."""
    name = "softsign"
    sup_square = 1.0
    bounds = (-1.0, 1.0)

    def forward(self, z):
        d = np.abs(z)
        d += 1.0
        return np.divide(z, d, out=d)

    def derivative(self, z, a):
        out = np.abs(z)
        out += 1.0
        np.multiply(out, out, out=out)
        np.reciprocal(out, out=out)
        return out


class Identity(PiecewiseLinear):
    """phi(z) = z;  phi'(z) = 1."""
    name = "identity"
    slopes = (1.0, 1.0)

    def forward(self, z):
        return z.copy()

    def derivative(self, z, a):
        return np.ones_like(z)


REGISTRY = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Softsign, Identity)}


def get(name, **kwargs):
    """Activation by name; ``kwargs`` are its parameters (its class's ``params``). An instance is
    returned as it is (``kwargs`` must then be empty)."""
    if isinstance(name, Activation):
        if kwargs:
            raise ValueError(f"parameters {sorted(kwargs)} given with an activation instance {name!r}")
        return name
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad parameters for activation {name!r}: {exc}") from None


def parameter_names():
    """Every parameter name that some registered activation takes (the config schema's keys)."""
    return tuple(sorted({key for cls in REGISTRY.values() for key in cls.params}))


def parameters_of(name, values):
    """{parameter: value} of ``values`` (a mapping) that activation ``name`` takes, the others left out."""
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    return {key: values[key] for key in cls.params if key in values}
