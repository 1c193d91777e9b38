"""Optimizers with torch.optim's update rules, defaults and keyword names.

``opt = get("adam", lr=1e-3)``; ``opt.step(net, grads)`` updates ``net.weights`` and
``net.biases`` in place. Each rule computes the amount ``u`` to subtract
(p <- p - u), so ||u|| of every weight matrix is recorded in ``net.update_norms``
for the ``update_ratio`` probe.

The rules are elementwise, so they run on the network's parameters as one flat
array (``net.flat_parameters()``: every weight, then every bias) in blocks of
``BLOCK_BYTES`` per array, split over threads (nncore.parallel). ``opt.state`` holds the rule's state as flat arrays
in that order (``exp_avg``, ``momentum_buffer``, ... as torch names them).

Two options common to all, as in torch:
  weight_decay  coupled L2: g <- g + weight_decay * p before the rule (biases included);
  clip_norm     global-norm clipping before the step, as torch.nn.utils.clip_grad_norm_:
                g <- g * clip_norm / (||g||_total + 1e-6) when that factor is < 1.
                (One difference: float32 norms beyond float32's range stay finite here,
                see _sq_norm, where torch's become inf and clip the gradient to zero.)
"""
import math

import numpy as np

from . import parallel

# Bytes of each array per block: 65,536 float64 or 131,072 float32 elements, measured best for Adam
# at 20/256/128 on 2 threads (float64: 7.4-7.9 ms vs 8.0-9.1 at half and 7.8-8.5 at twice the
# elements; float32: 3.7-4.5 ms vs 4.1-4.9 at half). Smaller blocks cost more in NumPy calls.
BLOCK_BYTES = 1 << 19


class Optimizer:
    name = "optimizer"
    defaults = {}
    scratch = ()  # names of per-step work arrays a rule needs besides u

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
        self._layout = None
        self._gather = None

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
        p = net.flat_parameters()
        g = self._flat_grads(p, net, grads)
        total = global_norm(grads) if total_norm is None else total_norm
        self.last_total_norm = total
        scale = 1.0
        if self.clip_norm is not None:
            scale = min(self.clip_norm / (total + 1e-6), 1.0)
        lay = self._prepare(net, p)
        self.t += 1
        n_blocks = len(lay["blocks"])
        try:
            parallel.run(lambda lo, hi: self._blocks(p, g, scale, lo, hi),
                         parallel.bounds(n_blocks, parallel.n_parts(p.size, limit=n_blocks)))
        except BaseException:
            self.t -= 1  # the step did not happen (the parameters may be partly updated)
            raise
        net.update_norms[:] = np.sqrt(np.bincount(lay["seg_layer"], lay["seg_sq"], minlength=net.n_layers))

    def _flat_grads(self, p, net, grads):
        """The gradients as one flat array laid out as ``p``: the network's own buffer, or a copy."""
        params = list(net.weights) + list(net.biases)
        flat = grads.packed() if hasattr(grads, "packed") else None
        if (flat is not None and flat.dtype == p.dtype and len(grads.views) == len(params)
                and all(a.shape == b.shape for a, b in zip(params, grads.views))):
            return flat
        gs = list(grads.weights) + list(grads.biases)
        if len(params) != len(gs) or any(a.shape != np.shape(b) for a, b in zip(params, gs)):
            raise ValueError(f"gradient shapes {[np.shape(b) for b in gs]} do not match parameter shapes "
                             f"{[a.shape for a in params]}")
        same = self._gather is not None and self._gather.shape == p.shape and self._gather.dtype == p.dtype
        work = self._gather if same else np.empty_like(p)
        start = 0
        for b in gs:
            n = np.size(b)
            np.copyto(work[start:start + n], np.reshape(b, -1), casting="same_kind")
            start += n
        self._gather = work  # kept: a caller that passes its own gradients usually does so every step
        return work

    def _prepare(self, net, p):
        """Per-network layout, state and work arrays, made at the first step."""
        lay = self._layout
        shapes = net._param_shapes()
        if lay is not None:
            if lay["shapes"] != shapes or lay["dtype"] != p.dtype:
                raise ValueError(f"this optimizer holds state for {lay['dtype']} parameters of shapes "
                                 f"{lay['shapes']}; the network has {p.dtype} parameters of shapes {shapes}")
            return lay
        # ||u|| per layer sums the dots of the parts of each block that lie in that layer
        block = max(1, BLOCK_BYTES // p.itemsize)
        blocks = [(a, min(a + block, p.size)) for a in range(0, p.size, block)]
        segs, seg_layer = [], []
        offsets = net._param_offsets()
        starts, stops = offsets[:net.n_layers], offsets[1:net.n_layers + 1]  # of the weight matrices
        for lo, hi in blocks:
            here = [(l, max(lo, s), min(hi, e)) for l, (s, e) in enumerate(zip(starts, stops)) if s < hi and e > lo]
            segs.append([(len(seg_layer) + k, a, b) for k, (_, a, b) in enumerate(here)])
            seg_layer += [l for l, _, _ in here]
        self._layout = lay = {
            "shapes": shapes, "dtype": p.dtype, "blocks": blocks, "segs": segs,
            "seg_layer": np.asarray(seg_layer, dtype=np.intp), "seg_sq": np.zeros(len(seg_layer)),
            "work": {},  # block-sized work arrays of each thread's part, see _work
        }
        self.state = self._init_state(p)
        return lay

    def _init_state(self, p):
        """The rule's state for parameters ``p``: {name: flat array}."""
        return {}

    def _work(self, first, dtype):
        """The work arrays (u, g_eff, the rule's scratch) of the part that starts at block
        ``first``: one block long and reused for every block of that part, so that they stay
        in cache (full-size ones would be written back to memory at every step)."""
        lay = self._layout
        work = lay["work"].get(first)  # parts start at distinct blocks: no two threads share one
        if work is None:
            size = lay["blocks"][0][1] - lay["blocks"][0][0]
            names = ("u", *self.scratch) + (("g_eff",) if self.clip_norm is not None or self.weight_decay else ())
            work = lay["work"][first] = {name: np.empty(size, dtype) for name in names}
        return work

    def _blocks(self, p, g, scale, first, stop):
        """Update blocks [first, stop) of the layout; record each block's ||u||^2 per layer."""
        lay = self._layout
        seg_sq, decay = lay["seg_sq"], self.weight_decay
        work = self._work(first, p.dtype)
        for k in range(first, stop):
            lo, hi = lay["blocks"][k]
            pb, gb = p[lo:hi], g[lo:hi]
            u = work["u"][:hi - lo]
            if scale != 1.0 or decay:
                g_eff = work["g_eff"][:hi - lo]
                np.multiply(gb, scale, out=g_eff)
                if decay:
                    np.multiply(pb, decay, out=u)
                    g_eff += u
                gb = g_eff
            st = {name: a[lo:hi] for name, a in self.state.items()}
            st.update((name, work[name][:hi - lo]) for name in self.scratch)
            self._update(pb, gb, st, u)
            pb -= u
            for s, a, b in lay["segs"][k]:
                ub = u[a - lo:b - lo]
                seg_sq[s] = np.einsum("i,i->", ub, ub)

    def _update(self, p, g, st, u):
        """Write into ``u`` the amount to subtract from ``p`` at step ``self.t``; ``st`` holds
        this block's slices of the state and scratch arrays."""
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
        h["nesterov"] = _flag("nesterov", h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")

    def _init_state(self, p):
        return {"momentum_buffer": np.zeros_like(p)} if self.hyper["momentum"] else {}

    def _update(self, p, g, st, u):
        h = self.hyper
        mu = h["momentum"]
        if mu:
            buf = st["momentum_buffer"]
            if self.t == 1:
                np.copyto(buf, g)
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

    def _init_state(self, p):
        return {"sum": np.full_like(p, self.hyper["initial_accumulator_value"])}

    def _update(self, p, g, st, u):
        h = self.hyper
        acc = st["sum"]
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
        h["alpha"] = _number("alpha", h["alpha"], low=0.0, top=1.0)
        h["eps"] = _number("eps", h["eps"], low=0.0)
        h["momentum"] = _number("momentum", h["momentum"], low=0.0)
        h["centered"] = _flag("centered", h["centered"])

    def _init_state(self, p):
        h = self.hyper
        names = ["square_avg"] + ["grad_avg"] * h["centered"] + ["momentum_buffer"] * (h["momentum"] > 0)
        return {name: np.zeros_like(p) for name in names}

    def _update(self, p, g, st, u):
        h = self.hyper
        alpha = h["alpha"]
        v = st["square_avg"]
        v *= alpha
        np.multiply(g, g, out=u)
        u *= 1.0 - alpha
        v += u
        if h["centered"]:
            gavg = st["grad_avg"]
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
            buf = st["momentum_buffer"]
            buf *= h["momentum"]
            buf += u
            np.copyto(u, buf)
        u *= h["lr"]


class Adadelta(Optimizer):
    """torch.optim.Adadelta (lr = 1.0, rho = 0.9, eps = 1e-6):
    v = rho v + (1 - rho) g^2; d = sqrt(s + eps) / sqrt(v + eps) g; s = rho s + (1 - rho) d^2; p -= lr d."""
    name = "adadelta"
    defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6}
    scratch = ("d",)

    def _validate(self):
        self.hyper["rho"] = _number("rho", self.hyper["rho"], low=0.0, top=1.0)
        self.hyper["eps"] = _number("eps", self.hyper["eps"], low=0.0)

    def _init_state(self, p):
        return {"square_avg": np.zeros_like(p), "acc_delta": np.zeros_like(p)}

    def _update(self, p, g, st, u):
        h = self.hyper
        rho, eps = h["rho"], h["eps"]
        v, s = st["square_avg"], st["acc_delta"]
        v *= rho
        np.multiply(g, g, out=u)
        u *= 1.0 - rho
        v += u
        np.add(s, eps, out=u)
        np.sqrt(u, out=u)
        d = st["d"]
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
        h["amsgrad"] = _flag("amsgrad", h["amsgrad"])

    def _init_state(self, p):
        names = ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * self.hyper["amsgrad"]
        return {name: np.zeros_like(p) for name in names}

    def _update(self, p, g, st, u):
        h = self.hyper
        b1, b2 = h["betas"]
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m *= b1
        np.multiply(g, 1.0 - b1, out=u)
        m += u
        v *= b2
        np.multiply(g, g, out=u)
        u *= 1.0 - b2
        v += u
        if h["amsgrad"]:
            vmax = st["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = h["lr"] / (1.0 - b1 ** self.t)
        root_bc2 = math.sqrt(1.0 - b2 ** self.t)
        np.sqrt(v, out=u)
        denom = root_bc2 * step_size
        scale, shift = (1.0 / denom, h["eps"] / step_size) if denom > 0 else (math.inf, math.inf)
        if max(scale, shift) <= float(np.finfo(u.dtype).max):
            # step_size m / (sqrt(v) / root_bc2 + eps) with the constants folded: one pass fewer,
            # the same value to a rounding
            u *= scale
            u += shift
            np.divide(m, u, out=u)
        else:  # lr below ~1e-38 (float32) or ~1e-300 (float64): the folded constants overflow
            u /= root_bc2
            u += h["eps"]
            np.divide(m, u, out=u)
            u *= step_size


def _sq_norm(x):
    """Sum of squares of ``x``'s entries. float32 entries are summed by a float32 dot (as torch
    sums them, and 6x faster than converting) unless that overflowed (from 1.8e19) or may have
    lost squares to underflow (below 1e-19): then again in float64, so that a finite gradient
    never has an infinite norm (which would stop training as diverged) nor a spurious zero."""
    flat = x.reshape(-1)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sq = float(np.dot(flat, flat))
    if flat.dtype == np.float64 or flat.size * _TINY_SQUARES <= sq < math.inf:
        return sq
    step = BLOCK_BYTES // 8
    return float(sum(np.dot(c, c) for c in (flat[i:i + step].astype(np.float64) for i in range(0, flat.size, step))))


_TINY_SQUARES = 2.0 ** -125  # per entry: float32 squares lost below it sum to < half an ulp of the total


def _flag(name, value):
    """``value`` as a bool; ValueError for anything else (the string "False" is not false)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _number(name, value, low=None, high=None, strict=False, top=None):
    """``value`` as a float checked against [low, high) (or (low, high) with ``strict``);
    ``top`` is an inclusive upper bound."""
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
    if top is not None and value > top:
        raise ValueError(f"{name} must be <= {top}, got {value}")
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
    flat = grads.packed() if hasattr(grads, "packed") else None
    if flat is not None:
        return math.sqrt(_sq_norm(flat))
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
