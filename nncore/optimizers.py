"""Optimizers with torch.optim's update rules, defaults, keyword names and state names.

``opt = get("adam", lr=1e-3)``; ``opt.step(net, grads)`` updates every parameter of
``net.parameters()`` (weights, biases, then norm scales and shifts) in place, one whole array
at a time. Each rule is torch's formula: it returns the amount ``u`` to subtract (p <- p - u),
a new array; the step leaves the u of every weight matrix in ``net.weight_updates``, whose
norms are ``net.update_norms`` (the ``update_ratio`` probe). ``opt.state[i]`` is the state of parameter i, a dict named as torch names it
(``step``, ``exp_avg``, ``momentum_buffer``, ...).

Two options common to all, as in torch:
  weight_decay  coupled L2: g <- g + weight_decay * p before the rule (biases and norm
                parameters included, as torch applies it to every parameter it is given);
  clip_norm     global-norm clipping before the step, as torch.nn.utils.clip_grad_norm_:
                g <- g * clip_norm / (||g||_total + 1e-6) when that factor is < 1.
                (One difference: float32 norms beyond float32's range stay finite here,
                see _sq_norm, where torch's become inf and clip the gradient to zero.)
"""
import math

import numpy as np

from .checks import number
from .squares import sum_of_squares


class Optimizer:
    name = "optimizer"
    defaults = {}

    def __init__(self, **hyper):
        unknown = set(hyper) - set(self.defaults) - {"weight_decay", "clip_norm"}
        if unknown:
            valid = ", ".join(sorted(set(self.defaults) | {"weight_decay", "clip_norm"}))
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for optimizer {self.name!r}; valid: {valid}")
        self.hyper = {**self.defaults, **{k: v for k, v in hyper.items() if k in self.defaults}}
        self.weight_decay = number("weight_decay", hyper.get("weight_decay", 0.0), low=0.0)
        clip = hyper.get("clip_norm")
        self.clip_norm = None if clip is None else number("clip_norm", clip, low=0.0, strict=True)
        self.hyper["lr"] = number("lr", self.hyper["lr"], low=0.0, strict=True)
        self._validate()
        self.t = 0
        self.state = []
        self._last_total_norm = (float("nan"), None)
        self.last_clipped = False  # whether clip_norm scaled the last step's gradients

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
        params, gs = net.parameters(), _all(grads)
        shapes, dtype = [p.shape for p in params], params[0].dtype
        if [g.shape if isinstance(g, np.ndarray) else np.shape(g) for g in gs] != shapes:
            raise ValueError(f"gradient shapes {[np.shape(g) for g in gs]} do not match parameter shapes "
                             f"{shapes}")
        if not self.state:
            self.state = [{} for _ in params]
            self._shapes = (shapes, dtype)
        elif self._shapes != (shapes, dtype):
            raise ValueError(f"this optimizer holds state for {self._shapes[1]} parameters of shapes "
                             f"{self._shapes[0]}; the network has {dtype} parameters of shapes {shapes}")
        if total_norm is None and self.clip_norm is not None:
            total_norm = _norm(gs)
        self._last_total_norm = (total_norm, gs)
        scale = self.clip_scale(total_norm)
        self.last_clipped = scale < 1.0
        self.t += 1
        t, decay, updates = self.t, self.weight_decay, []
        try:
            for p, g, state in zip(params, gs, self.state):
                if not (isinstance(g, np.ndarray) and g.dtype == p.dtype):
                    g = np.asarray(g, dtype=p.dtype)
                if scale != 1.0:
                    g = g * scale
                if decay:
                    g = g + decay * p
                state["step"] = t
                u = self._update(p, g, state)
                p -= u
                updates.append(u)
        except BaseException:
            self.t -= 1  # the step did not happen (the parameters may be partly updated)
            raise
        net.weight_updates = updates[:net.n_layers]  # their norms are computed when a probe reads them

    def clip_scale(self, total_norm):
        """The factor clip_norm scales gradients of global norm ``total_norm`` by (1.0 without clipping)."""
        return 1.0 if self.clip_norm is None else clip_factor(self.clip_norm, total_norm)

    @property
    def last_total_norm(self):
        """The global norm of the gradients given to the last step (NaN before any), computed
        on first use when the step neither clipped nor was given it."""
        total, gs = self._last_total_norm
        if total is None:
            total = _norm(gs)
            self._last_total_norm = (total, None)
        return total

    def _update(self, p, g, state):
        """The amount to subtract from ``p`` at step ``state["step"]``, a new array (the network
        keeps it as the last update); updates ``state``."""
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: with momentum mu, buf = g on the first step, then
    buf = mu buf + (1 - dampening) g; the step is lr * buf, or lr * (g + mu buf) with nesterov."""
    name = "sgd"
    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False}

    def _validate(self):
        h = self.hyper
        h["momentum"] = number("momentum", h["momentum"], low=0.0)
        h["dampening"] = number("dampening", h["dampening"], low=0.0)
        h["nesterov"] = _flag("nesterov", h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")

    def _update(self, p, g, state):
        h = self.hyper
        mu = h["momentum"]
        if mu:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                state["momentum_buffer"] = mu * state["momentum_buffer"] + (1.0 - h["dampening"]) * g
            g = g + mu * state["momentum_buffer"] if h["nesterov"] else state["momentum_buffer"]
        return h["lr"] * g


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
            self.hyper[key] = number(key, self.hyper[key], low=0.0)

    def _update(self, p, g, state):
        h = self.hyper
        if "sum" not in state:
            state["sum"] = np.full_like(p, h["initial_accumulator_value"])
        state["sum"] += g * g
        clr = h["lr"] / (1.0 + (state["step"] - 1) * h["lr_decay"])
        return clr * (g / (np.sqrt(state["sum"]) + h["eps"]))


class RMSprop(Optimizer):
    """torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2; step lr g / (sqrt(v) + eps), eps outside
    the root; centered subtracts the squared running mean of g; momentum keeps buf = mu buf + g / avg."""
    name = "rmsprop"
    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False}

    def _validate(self):
        h = self.hyper
        h["alpha"] = number("alpha", h["alpha"], low=0.0, top=1.0)
        h["eps"] = number("eps", h["eps"], low=0.0)
        h["momentum"] = number("momentum", h["momentum"], low=0.0)
        h["centered"] = _flag("centered", h["centered"])

    def _update(self, p, g, state):
        h = self.hyper
        alpha = h["alpha"]
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p)
            if h["centered"]:
                state["grad_avg"] = np.zeros_like(p)
            if h["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p)
        state["square_avg"] = alpha * state["square_avg"] + (1.0 - alpha) * (g * g)
        if h["centered"]:
            state["grad_avg"] = alpha * state["grad_avg"] + (1.0 - alpha) * g
            avg = np.sqrt(state["square_avg"] - state["grad_avg"] * state["grad_avg"]) + h["eps"]
        else:
            avg = np.sqrt(state["square_avg"]) + h["eps"]
        if h["momentum"] > 0:
            state["momentum_buffer"] = h["momentum"] * state["momentum_buffer"] + g / avg
            return h["lr"] * state["momentum_buffer"]
        return h["lr"] * (g / avg)


class Adadelta(Optimizer):
    """torch.optim.Adadelta (lr = 1.0, rho = 0.9, eps = 1e-6):
    v = rho v + (1 - rho) g^2; d = sqrt(s + eps) / sqrt(v + eps) g; s = rho s + (1 - rho) d^2; p -= lr d."""
    name = "adadelta"
    defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6}

    def _validate(self):
        self.hyper["rho"] = number("rho", self.hyper["rho"], low=0.0, top=1.0)
        self.hyper["eps"] = number("eps", self.hyper["eps"], low=0.0)

    def _update(self, p, g, state):
        h = self.hyper
        rho, eps = h["rho"], h["eps"]
        if "square_avg" not in state:
            state["square_avg"], state["acc_delta"] = np.zeros_like(p), np.zeros_like(p)
        state["square_avg"] = rho * state["square_avg"] + (1.0 - rho) * (g * g)
        delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
        state["acc_delta"] = rho * state["acc_delta"] + (1.0 - rho) * (delta * delta)
        return h["lr"] * delta


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
        h["betas"] = tuple(number(f"betas[{i}]", b, low=0.0, high=1.0) for i, b in enumerate(betas))
        h["eps"] = number("eps", h["eps"], low=0.0)
        h["amsgrad"] = _flag("amsgrad", h["amsgrad"])

    def _update(self, p, g, state):
        h = self.hyper
        (b1, b2), t = h["betas"], state["step"]
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = np.zeros_like(p), np.zeros_like(p)
            if h["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1                      # in place, as torch: exp_avg.lerp_(g, 1 - b1)
        m += (1.0 - b1) * g
        v *= b2                      # exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        v += (1.0 - b2) * g * g
        if h["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = h["lr"] / (1.0 - b1 ** t)
        denom = np.sqrt(v)           # sqrt(v) / sqrt(1 - b2^t) + eps
        denom /= math.sqrt(1.0 - b2 ** t)
        denom += h["eps"]
        u = m / denom
        u *= step_size
        return u


def _sq_norm(x):
    """Sum of squares of ``x``'s entries. float32 entries are summed by a float32 dot (as torch
    sums them) unless that overflowed (from 1.8e19) or may have lost squares to underflow (below
    1e-19): then again in float64, so that a finite gradient never has an infinite norm (which
    would stop training as diverged) nor a spurious zero."""
    flat = np.asarray(x).ravel()
    if flat.dtype == np.float64:
        return sum_of_squares(flat)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sq = float(np.dot(flat, flat))
    if flat.size * _TINY_SQUARES <= sq < math.inf:
        return sq
    flat = flat.astype(np.float64)
    return float(np.dot(flat, flat))


_TINY_SQUARES = 2.0 ** -125  # per entry: float32 squares lost below it sum to < half an ulp of the total


def _flag(name, value):
    """``value`` as a bool; ValueError for anything else (the string "False" is not false)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


REGISTRY = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adagrad, RMSprop, Adadelta, Adam)}


def get(name, **hyper):
    """Optimizer ``name`` with torch.optim keyword names (lr, momentum, betas, eps, ...)."""
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    return cls(**hyper)


def global_norm(grads):
    """sqrt of the summed squares of every gradient (weights, biases, norm scales and shifts)."""
    return _norm(_all(grads))


def _norm(arrays):
    return math.sqrt(sum(_sq_norm(a) for a in arrays))


def _all(grads):
    return grads.parameters() if hasattr(grads, "parameters") else [*grads.weights, *grads.biases]


def clip_factor(max_norm, total_norm):
    """torch.nn.utils.clip_grad_norm_'s factor for gradients of global norm ``total_norm``, at most 1."""
    return min(max_norm / (total_norm + 1e-6), 1.0)


def clip_grad_norm(grads, max_norm):
    """Scale ``grads`` in place as torch.nn.utils.clip_grad_norm_; returns the total norm before."""
    gs = _all(grads)
    total = _norm(gs)
    coef = clip_factor(max_norm, total)
    if coef < 1.0:
        for g in gs:
            g *= coef
    return total
