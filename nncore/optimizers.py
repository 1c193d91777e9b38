"""Optimizers with torch.optim's update rules, defaults and keyword names.

``opt = get("adam", lr=1e-3)``; ``opt.step(net, grads)`` updates ``net.weights`` and
``net.biases`` in place. State is kept per parameter. Each rule computes the
amount ``u`` to subtract (p <- p - u), so ||u|| of every weight matrix is
recorded in ``net.update_norms`` for the ``update_ratio`` probe.

Two options common to all, as in torch:
  weight_decay  coupled L2: g <- g + weight_decay * p before the rule (biases included);
  clip_norm     global-norm clipping before the step, as torch.nn.utils.clip_grad_norm_:
                g <- g * clip_norm / (||g||_total + 1e-6) when that factor is < 1.
"""
import math

import numpy as np


class Optimizer:
    name = "optimizer"
    defaults = {}

    def __init__(self, **hyper):
        unknown = set(hyper) - set(self.defaults) - {"weight_decay", "clip_norm"}
        if unknown:
            valid = ", ".join(sorted(set(self.defaults) | {"weight_decay", "clip_norm"}))
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for optimizer {self.name!r}; valid: {valid}")
        self.hyper = {**self.defaults, **{k: v for k, v in hyper.items() if k in self.defaults}}
        self.weight_decay = _number("weight_decay", hyper.get("weight_decay", 0.0), low=0.0)
        clip = hyper.get("clip_norm")
        self.clip_norm = None if clip is None else _number("clip_norm", clip, low=0.0, strict=True)
        self.hyper["lr"] = _number("lr", self.hyper["lr"], low=0.0, strict=True)
        self._validate()
        self.t = 0
        self.state = {}
        self.last_total_norm = float("nan")

    def _validate(self):
        pass

    def __repr__(self):
        extra = {"weight_decay": self.weight_decay, "clip_norm": self.clip_norm}
        args = ", ".join(f"{k}={v}" for k, v in {**self.hyper, **extra}.items())
        return f"{type(self).__name__}({args})"

    @property
    def lr(self):
        return self.hyper["lr"]

    def step(self, net, grads, total_norm=None):
        """Update ``net`` in place. ``total_norm`` is the global gradient norm when the
        caller has already computed it (the training loop does, to detect divergence)."""
        params = list(net.weights) + list(net.biases)
        gs = list(grads.weights) + list(grads.biases)
        if len(params) != len(gs) or any(p.shape != g.shape for p, g in zip(params, gs)):
            raise ValueError(f"gradient shapes {[g.shape for g in gs]} do not match parameter shapes "
                             f"{[p.shape for p in params]}")
        scale = 1.0
        total = global_norm(grads) if total_norm is None else total_norm
        self.last_total_norm = total
        if self.clip_norm is not None:
            coef = self.clip_norm / (total + 1e-6)
            scale = min(coef, 1.0)
        self.t += 1
        n_weights = len(net.weights)
        for i, (p, g) in enumerate(zip(params, gs)):
            st = self.state.get(i)
            if st is None:
                st = self.state[i] = {"u": np.empty_like(p)}
            u = st["u"]
            if scale != 1.0 or self.weight_decay:
                g_eff = st.get("g")
                if g_eff is None:
                    g_eff = st["g"] = np.empty_like(p)
                np.multiply(g, scale, out=g_eff)
                if self.weight_decay:
                    np.multiply(p, self.weight_decay, out=u)
                    g_eff += u
                g = g_eff
            self._update(p, g, st, u)
            p -= u
            if i < n_weights:
                net.update_norms[i] = math.sqrt(_sq_norm(u))

    def _update(self, p, g, st, u):
        """Write into ``u`` the amount to subtract from ``p`` at step ``self.t``."""
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: with momentum mu, buf = g on the first step, then
    buf = mu buf + (1 - dampening) g; the step is lr * buf, or lr * (g + mu buf) with nesterov."""
    name = "sgd"
    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False}

    def _validate(self):
        h = self.hyper
        h["momentum"] = _number("momentum", h["momentum"], low=0.0)
        h["dampening"] = _number("dampening", h["dampening"], low=0.0)
        h["nesterov"] = bool(h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")

    def _update(self, p, g, st, u):
        h = self.hyper
        mu = h["momentum"]
        if mu:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                np.multiply(g, 1.0 - h["dampening"], out=u)
                buf += u
            if h["nesterov"]:
                np.multiply(buf, mu, out=u)
                u += g
            else:
                np.copyto(u, buf)
            u *= h["lr"]
        else:
            np.multiply(g, h["lr"], out=u)


class Momentum(SGD):
    """SGD with heavy-ball momentum (default 0.9), torch semantics."""
    name = "momentum"
    defaults = {**SGD.defaults, "momentum": 0.9}


class Nesterov(SGD):
    """SGD with Nesterov momentum (default 0.9), torch semantics."""
    name = "nesterov"
    defaults = {**SGD.defaults, "momentum": 0.9, "nesterov": True}


class Adagrad(Optimizer):
    """torch.optim.Adagrad: sum += g^2; p -= clr g / (sqrt(sum) + eps), clr = lr / (1 + (t-1) lr_decay)."""
    name = "adagrad"
    defaults = {"lr": 1e-2, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10}

    def _validate(self):
        for key in ("lr_decay", "initial_accumulator_value", "eps"):
            self.hyper[key] = _number(key, self.hyper[key], low=0.0)

    def _update(self, p, g, st, u):
        h = self.hyper
        acc = st.get("sum")
        if acc is None:
            acc = st["sum"] = np.full_like(p, h["initial_accumulator_value"])
        np.multiply(g, g, out=u)
        acc += u
        clr = h["lr"] / (1.0 + (self.t - 1) * h["lr_decay"])
        np.sqrt(acc, out=u)
        u += h["eps"]
        np.divide(g, u, out=u)
        u *= clr


class RMSprop(Optimizer):
    """torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2; step lr g / (sqrt(v) + eps), eps outside
    the root; centered subtracts the squared running mean of g; momentum keeps buf = mu buf + g / avg."""
    name = "rmsprop"
    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False}

    def _validate(self):
        h = self.hyper
        h["alpha"] = _number("alpha", h["alpha"], low=0.0, high=1.0)
        h["eps"] = _number("eps", h["eps"], low=0.0)
        h["momentum"] = _number("momentum", h["momentum"], low=0.0)
        h["centered"] = bool(h["centered"])

    def _update(self, p, g, st, u):
        h = self.hyper
        alpha = h["alpha"]
        v = st.get("square_avg")
        if v is None:
            v = st["square_avg"] = np.zeros_like(p)
        v *= alpha
        np.multiply(g, g, out=u)
        u *= 1.0 - alpha
        v += u
        if h["centered"]:
            gavg = st.get("grad_avg")
            if gavg is None:
                gavg = st["grad_avg"] = np.zeros_like(p)
            gavg *= alpha
            np.multiply(g, 1.0 - alpha, out=u)
            gavg += u
            np.multiply(gavg, gavg, out=u)
            np.subtract(v, u, out=u)
            np.sqrt(u, out=u)
        else:
            np.sqrt(v, out=u)
        u += h["eps"]
        np.divide(g, u, out=u)
        if h["momentum"] > 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = np.zeros_like(p)
            buf *= h["momentum"]
            buf += u
            np.copyto(u, buf)
        u *= h["lr"]


class Adadelta(Optimizer):
    """torch.optim.Adadelta (lr = 1.0, rho = 0.9, eps = 1e-6):
    v = rho v + (1 - rho) g^2; d = sqrt(s + eps) / sqrt(v + eps) g; s = rho s + (1 - rho) d^2; p -= lr d."""
    name = "adadelta"
    defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6}

    def _validate(self):
        self.hyper["rho"] = _number("rho", self.hyper["rho"], low=0.0, high=1.0)
        self.hyper["eps"] = _number("eps", self.hyper["eps"], low=0.0)

    def _update(self, p, g, st, u):
        h = self.hyper
        rho, eps = h["rho"], h["eps"]
        v = st.get("square_avg")
        if v is None:
            v = st["square_avg"] = np.zeros_like(p)
            st["acc_delta"] = np.zeros_like(p)
        s = st["acc_delta"]
        v *= rho
        np.multiply(g, g, out=u)
        u *= 1.0 - rho
        v += u
        np.add(s, eps, out=u)
        np.sqrt(u, out=u)
        d = st.get("d")
        if d is None:
            d = st["d"] = np.empty_like(p)
        np.add(v, eps, out=d)
        np.sqrt(d, out=d)
        np.divide(u, d, out=u)
        u *= g                       # u = delta
        s *= rho
        np.multiply(u, u, out=d)
        d *= 1.0 - rho
        s += d
        u *= h["lr"]


class Adam(Optimizer):
    """torch.optim.Adam: m, v moving averages; step (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    With amsgrad, v is replaced by its running maximum."""
    name = "adam"
    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}

    def _validate(self):
        h = self.hyper
        try:
            betas = tuple(h["betas"])
        except TypeError:
            betas = ()
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair, got {h['betas']!r}")
        h["betas"] = tuple(_number(f"betas[{i}]", b, low=0.0, high=1.0) for i, b in enumerate(betas))
        h["eps"] = _number("eps", h["eps"], low=0.0)
        h["amsgrad"] = bool(h["amsgrad"])

    def _update(self, p, g, st, u):
        h = self.hyper
        b1, b2 = h["betas"]
        m = st.get("exp_avg")
        if m is None:
            m = st["exp_avg"] = np.zeros_like(p)
            st["exp_avg_sq"] = np.zeros_like(p)
        v = st["exp_avg_sq"]
        m *= b1
        np.multiply(g, 1.0 - b1, out=u)
        m += u
        v *= b2
        np.multiply(g, g, out=u)
        u *= 1.0 - b2
        v += u
        if h["amsgrad"]:
            vmax = st.get("max_exp_avg_sq")
            if vmax is None:
                vmax = st["max_exp_avg_sq"] = np.zeros_like(p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        bias_correction1 = 1.0 - b1 ** self.t
        bias_correction2 = 1.0 - b2 ** self.t
        np.sqrt(v, out=u)
        u /= math.sqrt(bias_correction2)
        u += h["eps"]
        np.divide(m, u, out=u)
        u *= h["lr"] / bias_correction1


def _sq_norm(x):
    flat = x.reshape(-1)
    return float(np.dot(flat, flat))


def _number(name, value, low=None, high=None, strict=False):
    """``value`` as a float checked against [low, high) (or (low, high) with ``strict``)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if high is not None and value >= high:
        raise ValueError(f"{name} must be < {high}, got {value}")
    return value


REGISTRY = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adagrad, RMSprop, Adadelta, Adam)}


def get(name, **hyper):
    """Optimizer ``name`` with torch.optim keyword names (lr, momentum, betas, eps, ...)."""
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    return cls(**hyper)


def global_norm(grads):
    """sqrt of the summed squares of every weight and bias gradient."""
    return math.sqrt(sum(_sq_norm(g) for g in list(grads.weights) + list(grads.biases)))


def clip_grad_norm(grads, max_norm):
    """Scale ``grads`` in place as torch.nn.utils.clip_grad_norm_; returns the total norm before."""
    gs = list(grads.weights) + list(grads.biases)
    total = global_norm(grads)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in gs:
            g *= coef
    return total
