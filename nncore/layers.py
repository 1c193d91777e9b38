"""Layers: each one's backward is written right under its forward.

Every layer has
  ``params``, ``grads``    {name: array}; ``grads[name]`` has the shape of ``params[name]`` and is
                           a new array after each backward;
  ``forward(x, train)``    its output for the rows of ``x``; keeps in ``cache`` what backward
                           needs, and with ``keep_for_probes`` also what the probes read; ``train``
                           turns dropout on and makes BatchNorm use (and update) the batch's
                           statistics;
  ``backward(dout)``       dL/d(input) from dout = dL/d(output), filling ``grads``; it uses the
                           cache of the last forward and never recomputes it;
  ``jvp(t)``               forward-mode derivative at the last forward's rows: tangents t of shape
                           (batch, k, n_in) (k directions per row) to (batch, k, n_out), each row's
                           t[n] @ d out_n / d x_n in row-vector form; it reads the cache that
                           ``keep_for_probes`` keeps (``MLP.jacobian`` builds the Jacobian with it).

Row vectors: x has shape (batch, features). ``Sequential`` and ``Residual`` hold other layers;
the MLP (``nncore.network``) is a list of them and a final ``Dense``.

``keep_for_probes`` (False unless the network sets it for a pass) makes Dense keep z and dL/dz
and Activation its input u. A training pass keeps no more than its backward needs: each array
kept alive is one that the next allocation cannot reuse while it is still in the CPU's cache
(keeping z and dL/dz of every layer cost 12-19% of a plain NumPy step at depth 50).
"""
import numpy as np


class Layer:
    keep_for_probes = False

    def __init__(self):
        self.params, self.grads, self.cache = {}, {}, {}

    def forward(self, x, train):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __getstate__(self):  # a copy carries the parameters, not the last pass's arrays
        state = self.__dict__.copy()
        state["grads"], state["cache"] = {}, {}
        return state


class Dense(Layer):
    """z = x W + b with W of shape (fan_in, fan_out): torch.nn.Linear, W stored transposed.
    ``input_grad=False`` (the first layer) skips dL/dx, which nothing uses."""

    def __init__(self, W, b, input_grad=True):
        super().__init__()
        self.params = {"W": W, "b": b}
        self.input_grad = input_grad

    def forward(self, x, train):
        z = x @ self.params["W"]
        z += self.params["b"]
        self.cache = {"x": x, "z": z} if self.keep_for_probes else {"x": x}
        return z

    def backward(self, dout):
        if self.keep_for_probes:
            self.cache["dz"] = dout
        self.grads = {"W": self.cache["x"].T @ dout, "b": dout.sum(axis=0)}
        return dout @ self.params["W"].T if self.input_grad else None

    def jvp(self, t):
        return t @ self.params["W"]


class Activation(Layer):
    """h = phi(u) elementwise, ``phi`` an ``nncore.activations`` object; dL/du = phi'(u) dL/dh,
    phi'(u) from the cached h, and u when ``phi`` needs it (see activations)."""

    def __init__(self, phi):
        super().__init__()
        self.phi = phi

    def forward(self, x, train):
        h = self.phi.forward(x)
        self.cache = {"u": x, "h": h} if self.keep_for_probes or self.phi.backprop_needs_z else {"h": h}
        return h

    def backward(self, dout):
        return self.phi.backprop(dout, self.cache.get("u"), self.cache["h"])

    def jvp(self, t):
        return t * self.phi.derivative(self.cache.get("u"), self.cache["h"])[:, None, :]


class Dropout(Layer):
    """Inverted dropout, torch.nn.Dropout(p): in training each unit is kept with probability
    1 - p and scaled by 1/(1-p); at evaluation the identity. The mask (already scaled) is drawn
    from ``rng``, or is ``fixed_mask`` when the network sets one."""

    def __init__(self, p, rng, dtype):
        super().__init__()
        self.p, self.rng, self.dtype = p, rng, dtype
        self.fixed_mask = None

    def forward(self, x, train):
        if not (train and self.p > 0):
            self.cache = {"mask": None}
            return x
        mask = self.fixed_mask
        if mask is None:
            keep = self.rng.random(x.shape) >= self.p
            mask = np.multiply(keep, 1.0 / (1.0 - self.p), dtype=self.dtype)
        self.cache = {"mask": mask}
        return x * mask

    def backward(self, dout):
        mask = self.cache["mask"]
        return dout if mask is None else dout * mask

    def jvp(self, t):
        mask = self.cache["mask"]
        return t if mask is None else t * mask[:, None, :]


class BatchNorm(Layer):
    """torch.nn.BatchNorm1d(n, eps=1e-5, momentum=0.1), affine with gamma = 1, beta = 0 at first.

    Training: x_hat = (x - mean) / sqrt(var + eps) with the batch mean and *biased* variance,
    out = gamma x_hat + beta; the running averages move by ``momentum`` towards the batch mean
    and the *unbiased* variance (var * B / (B - 1)). Evaluation uses the running averages.
    ``batch_stats`` (set by the probes) uses the batch's statistics outside training without
    touching the running averages."""

    def __init__(self, n, dtype, eps=1e-5, momentum=0.1):
        super().__init__()
        self.params = {"gamma": np.ones(n, dtype), "beta": np.zeros(n, dtype)}
        self.running_mean, self.running_var = np.zeros(n, dtype), np.ones(n, dtype)
        self.eps, self.momentum = eps, momentum
        self.batch_stats = False

    def forward(self, x, train):
        if train or self.batch_stats:
            batch = x.shape[0]
            if train and batch < 2:
                raise ValueError("BatchNorm in training needs at least 2 examples per batch "
                                 "(the unbiased running variance divides by B - 1), got 1")
            mean = x.mean(axis=0)
            xc = x - mean
            var = (xc * xc).mean(axis=0)
            if train:
                m = self.momentum
                self.running_mean = (1.0 - m) * self.running_mean + m * mean
                self.running_var = (1.0 - m) * self.running_var + m * (var * (batch / (batch - 1)))
        else:
            xc, var = x - self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = xc * inv_std
        self.cache = {"x_hat": x_hat, "inv_std": inv_std, "batch": train or self.batch_stats}
        return x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout):
        x_hat, inv_std = self.cache["x_hat"], self.cache["inv_std"]
        self.grads = {"gamma": (dout * x_hat).sum(axis=0), "beta": dout.sum(axis=0)}
        dx_hat = dout * self.params["gamma"]
        if not self.cache["batch"]:  # the statistics are constants
            return dx_hat * inv_std
        # the batch's mean and variance depend on every row
        return (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0)) * inv_std

    def jvp(self, t):
        if self.cache["batch"]:
            raise ValueError("BatchNorm on batch statistics couples the rows of a batch (each row's output "
                             "depends on every other row): it has no per-row Jacobian")
        return t * (self.params["gamma"] * self.cache["inv_std"])


class LayerNorm(Layer):
    """torch.nn.LayerNorm(n, eps=1e-5): each row normalized by its own mean and biased variance
    over the n features, out = gamma x_hat + beta (gamma = 1, beta = 0 at first); the same in
    training and evaluation."""

    def __init__(self, n, dtype, eps=1e-5):
        super().__init__()
        self.params = {"gamma": np.ones(n, dtype), "beta": np.zeros(n, dtype)}
        self.eps = eps

    def forward(self, x, train):
        xc = x - x.mean(axis=1, keepdims=True)
        inv_std = 1.0 / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + self.eps)
        x_hat = xc * inv_std
        self.cache = {"x_hat": x_hat, "inv_std": inv_std}
        return x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout):
        x_hat, inv_std = self.cache["x_hat"], self.cache["inv_std"]
        self.grads = {"gamma": (dout * x_hat).sum(axis=0), "beta": dout.sum(axis=0)}
        dx_hat = dout * self.params["gamma"]
        return (dx_hat - dx_hat.mean(axis=1, keepdims=True)
                - x_hat * (dx_hat * x_hat).mean(axis=1, keepdims=True)) * inv_std

    def jvp(self, t):
        # per row: d x_hat = (dx - mean(dx) - x_hat mean(dx x_hat)) / std, then times gamma
        x_hat = self.cache["x_hat"][:, None, :]
        t_hat = (t - t.mean(axis=2, keepdims=True) - x_hat * (t * x_hat).mean(axis=2, keepdims=True))
        return t_hat * self.cache["inv_std"][:, None, :] * self.params["gamma"]


class Sequential(Layer):
    """``layers`` applied in order (one hidden layer of the MLP: Dense, norm, Activation, Dropout).
    The cache keeps the output."""

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x, train):
        for layer in self.layers:
            x = layer.forward(x, train)
        self.cache = {"out": x}
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def jvp(self, t):
        for layer in self.layers:
            t = layer.jvp(t)
        return t


class Residual(Sequential):
    """out = x + scale * f(x), f the ``layers`` in order: dL/dx = dout + f'(x)^T (scale dout)."""

    def __init__(self, layers, scale=1.0):
        super().__init__(layers)
        self.scale = scale

    def forward(self, x, train):
        out = x + self.scale * super().forward(x, train)
        self.cache = {"out": out}
        return out

    def backward(self, dout):
        return dout + super().backward(self.scale * dout)

    def jvp(self, t):
        return t + self.scale * super().jvp(t)
