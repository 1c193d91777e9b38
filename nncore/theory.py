"""Mean-field theory of signal propagation at initialization (Poole et al. 2016;
Schoenholz et al. 2017), in the conventions of ``nncore.network``.

Setting. Row vectors, z_l = a_(l-1) @ W_l + b_l, a_0 = x, a_l = phi(z_l) for the hidden
layers l = 1..L-1 and a linear output layer L. The entries of W_l are i.i.d. with mean 0 and
variance sigma_w^2 / n_(l-1) (n_l = width of layer l, n_0 = input dimension), the biases have
variance sigma_b^2 (``sigma_b2`` here is the *variance*: ``MLP(sigma_b=s)`` gives
``sigma_b2 = s**2``). In the infinite-width limit every pre-activation z_l is Gaussian with
mean 0 and second moment q^l, and

  length map   q^1 = sigma_w^2 * mean(x^2) + sigma_b^2        (x^2 averaged over features)
               q^l = sigma_w^2 * E_z[phi(sqrt(q^(l-1)) z)^2] + sigma_b^2,   z ~ N(0, 1).

It is the *mean square* E[a^2] of the previous layer (not its variance) that enters: W is
zero-mean, so E[z_j^2 | a] = Var(W) * sum_i a_i^2 whatever the mean of a (sigmoid's
activations have mean ~1/2). Since E[z] = 0, q^l is also the variance of z_l, which is what
``probes`` reports as ``preact_var`` (variance over batch and units).

Backward. With delta_l = d loss / d z_l (a row per example) and
delta_l = phi'(z_l) * (delta_(l+1) @ W_(l+1)^T), i.e.
delta_(l,i) = phi'(z_(l,i)) * sum_j W_(l+1,ij) delta_(l+1,j), the mean-field (gradient
independence) approximation gives

  E[delta_l^2] = E[phi'(z_l)^2] * n_(l+1) * Var(W_(l+1)) * E[delta_(l+1)^2]
               = sigma_w^2(W_(l+1)) * (n_(l+1) / n_l) * E_z[phi'(sqrt(q^l) z)^2] * E[delta_(l+1)^2].

So the factor that carries the error from layer l+1 down to layer l uses q^l of the layer
whose delta is being computed and the sigma_w^2 of the weights W_(l+1) above it. Between
hidden layers of equal width it is

  chi_l = sigma_w^2 * E_z[phi'(sqrt(q^l) z)^2]        (``chi``),

and at the fixed point q* of the length map chi(q*) sets the depth scale of gradients,
xi = -1 / log chi(q*) (``depth_scale``): E[delta^2] changes by a factor e every |xi| layers.

Expectations. An activation whose ``gaussian_gains()`` are known (the piecewise-linear ones,
``activations.PiecewiseLinear``: relu, leaky_relu, identity) uses those closed forms, and its
kink is never integrated numerically: with slopes (p, n) and s = sqrt(q),
  E[phi] = (p - n) s/sqrt(2 pi),   E[phi^2] = (p^2 + n^2) q/2,   E[phi'^2] = (p^2 + n^2)/2,
e.g. relu s/sqrt(2 pi), q/2, 1/2; leaky_relu (1-alpha) s/sqrt(2 pi), (1+alpha^2) q/2,
(1+alpha^2)/2; identity 0, q, 1 (at q = 0 the limits q -> 0+ are used, so relu's E[phi'^2]
stays 1/2). The bounded ones (finite ``sup_square``: sigmoid, tanh, softsign) are integrated
with ``nncore.activations``' own phi and phi' (``forward`` and ``derivative(z, a)``) by a composite Gauss-Legendre rule on z in [-10, 10] (the Gaussian
mass outside is < 2e-23), split at z = 0 (softsign's phi' has a kink there) and graded
geometrically towards 0 on the scale 1/sqrt(q) on which phi(sqrt(q) z) varies. A plain
101-node Gauss-Hermite rule (numpy.polynomial.hermite_e.hermegauss) is *not* used: its
relative error on tanh's E[phi'^2] is 3e-4 at q = 4 and 0.24 at q = 25 (the integrand
sech^4(5 z) is narrower than the node spacing), and 1.7e-2 on softsign's at q = 0.1
(the kink). The composite rule agrees with adaptive quadrature to ~1e-13 for q in
[0, 1e8] (see tests/nncore/test_theory.py).

``activation`` is an ``nncore.activations`` instance (``activations.get("leaky_relu", alpha=0.2)``)
or a name of ``nncore.activations.REGISTRY``, which stands for the activation with its parameters
at their defaults (``supported()`` lists those covered: each activation class says whether its
moments have closed forms or it is bounded).

Everything here is a prediction for the ensemble over initializations at infinite width;
a finite network of width n fluctuates around it by O(1/sqrt(n)) per layer.
"""
import inspect
import math

import numpy as np

from . import activations, initializers
from .checks import number

__all__ = ["FixedPointError", "sigma_w2", "moments", "length_map", "chi", "fixed_point",
           "depth_scale", "critical_sigma_w2", "predict", "supported"]


def _closed_form(act):
    """Whether ``act``'s Gaussian moments have closed forms (``act.gaussian_gains()``); the
    others are integrated from its forward and derivative by the rule below."""
    return act.gaussian_gains() is not None


def _covered(act):
    return _closed_form(act) or act.sup_square is not None


def supported():
    """Names of the registry's activations that this theory covers: those with closed-form
    moments, and the bounded ones (finite ``sup_square``) whose moments are integrated."""
    return tuple(name for name, cls in sorted(activations.REGISTRY.items()) if _covered(cls()))

# ----------------------------------------------------------------- quadrature rule
_Z_MAX = 10.0          # integrate z over [-10, 10]; P(|z| > 10) = 1.5e-23
_PANEL = 0.5           # widest panel in z
_GRADING = 0.25        # first graded breakpoint at z = 0.25 / sqrt(q), then doubling
_GL_NODES = 20         # Gauss-Legendre nodes per panel
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_NODES)
_UNIFORM_BREAKS = np.arange(_PANEL, _Z_MAX + _PANEL / 2, _PANEL)


def _half_line_rule(s):
    """Nodes t >= 0 and weights w with E[f(s z)] ~= sum w * (f(s t) + f(-s t)), z ~ N(0, 1)."""
    breaks = _UNIFORM_BREAKS
    if s > 0:
        first = _GRADING / s
        if first < _Z_MAX:
            n_graded = int(math.floor(math.log2(_Z_MAX / first))) + 1
            graded = first * 2.0 ** np.arange(n_graded)
            breaks = np.union1d(breaks, graded[graded < _Z_MAX])
    edges = np.concatenate(([0.0], breaks))
    lo, hi = edges[:-1], edges[1:]
    half = 0.5 * (hi - lo)
    t = (0.5 * (hi + lo))[:, None] + half[:, None] * _GL_X
    w = half[:, None] * _GL_W * np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    return t.ravel(), w.ravel()


def _quadrature_moments(act, q):
    """(E[phi], E[phi^2], E[phi'^2]) at z ~ N(0, q) for one scalar q, by the composite rule.

    At q = 0 the Gaussian is a point mass at 0 and the moments are exactly phi(0), phi(0)^2 and
    phi'(0)^2: the rule's weights sum to 1 only to within an ulp, so it is not used there.
    """
    if q == 0.0:
        return _moments_at_zero(act)
    s = math.sqrt(q)
    t, w = _half_line_rule(s)
    z = np.concatenate((s * t, -s * t))
    ww = np.concatenate((w, w))
    a = act.forward(z)
    d = act.derivative(z, a)
    return float(ww @ a), float(ww @ (a * a)), float(ww @ (d * d))


def _moments_at_zero(act):
    """(phi(0), phi(0)^2, phi'(0)^2), exactly, from the activation's own phi and phi'."""
    zero = np.zeros(1)
    a0 = act.forward(zero)
    d0 = float(act.derivative(zero, a0)[0])
    a0 = float(a0[0])
    return a0, a0 * a0, d0 * d0


# ------------------------------------------------------------------------ helpers
class FixedPointError(ArithmeticError):
    """The length map has no finite limit from the given start (q grows without bound)."""


def _activation(activation):
    """nncore Activation: the instance itself, or the named one with its default parameters."""
    act = activations.get(activation)  # ValueError listing the valid names
    if not _covered(act):
        raise ValueError(f"no mean-field theory for activation {act.name!r}; "
                         f"valid: {', '.join(supported())}")
    return act


def _nonnegative(name, value):
    return number(name, value, low=0.0)


def _times_gain(sigma_w2, gain):
    """sigma_w2 * gain, exactly 1.0 at the critical sigma_w2 = 1/gain that ``critical_sigma_w2``
    returns: in floating point (1/k) * k is 1 -+ 1 ulp for about one k in ten, which would put
    the critical point of leaky_relu in the ordered or the chaotic phase."""
    return 1.0 if sigma_w2 == 1.0 / gain else sigma_w2 * gain


# --------------------------------------------------------------------- public API
def sigma_w2(init, fan_in, fan_out, **init_params):
    """sigma_w^2 = fan_in * Var(W_ij) of nncore initializer ``init`` for a (fan_in, fan_out) layer.

    uniform 1/3; xavier_uniform, xavier_normal 2 fan_in/(fan_in+fan_out); he_uniform,
    he_normal 2; lecun_normal 1; normal sigma_w^2 (``sigma_w``, default as in
    ``initializers.normal``); orthogonal gain^2 fan_in/max(fan_in, fan_out) (entry variance
    gain^2/max). ``init_params`` not used by ``init`` are ignored, as in
    ``initializers.init_weights``. ``constant`` has no mean-field description (its weights
    are not zero-mean and all units of a layer are identical): ValueError.
    """
    fn = initializers.get(init)  # ValueError on unknown names
    for name, value in (("fan_in", fan_in), ("fan_out", fan_out)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    fan_in, fan_out = int(fan_in), int(fan_out)

    def param(name):
        default = inspect.signature(fn).parameters[name].default
        return _nonnegative(name, init_params.get(name, default))

    if init == "uniform":
        return 1.0 / 3.0
    if init in ("xavier_uniform", "xavier_normal"):
        return 2.0 * fan_in / (fan_in + fan_out)
    if init in ("he_uniform", "he_normal"):
        return 2.0
    if init == "lecun_normal":
        return 1.0
    if init == "normal":
        return param("sigma_w") ** 2
    if init == "orthogonal":
        return param("gain") ** 2 * fan_in / max(fan_in, fan_out)
    if init == "constant":
        raise ValueError("the mean-field theory does not apply to init='constant': its weights are "
                         "not zero-mean i.i.d. (every unit of a layer is identical)")
    raise ValueError(f"no sigma_w^2 known for initializer {init!r}")  # a new initializer


def moments(activation, q):
    """(E[phi(u)], E[phi(u)^2], E[phi'(u)^2]) for u ~ N(0, q); arrays shaped like ``q``.

    Closed forms where ``gaussian_gains()`` gives them (relu, leaky_relu, identity); the composite
    Gauss-Legendre rule of the module docstring for the bounded ones (sigmoid, tanh, softsign).
    """
    act = _activation(activation)
    q_arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q_arr)) or np.any(q_arr < 0):
        raise ValueError(f"q must be finite and >= 0, got {q!r}")
    if _closed_form(act):
        k2, kd, k1 = act.gaussian_gains()
        mean, ms, dms = k1 * np.sqrt(q_arr), k2 * q_arr, np.full_like(q_arr, kd)
    else:
        out = np.array([_quadrature_moments(act, float(v)) for v in q_arr.ravel()]).reshape(q_arr.shape + (3,))
        mean, ms, dms = out[..., 0], out[..., 1], out[..., 2]
    if q_arr.ndim == 0:
        return float(mean), float(ms), float(dms)
    return mean, ms, dms


def length_map(activation, q_prev, sigma_w2, sigma_b2):
    """q^l = sigma_w2 * E[phi(sqrt(q_prev) z)^2] + sigma_b2, z ~ N(0, 1); vectorized over q_prev.

    ``q_prev`` is the pre-activation second moment q^(l-1) of the layer below (for layer 1
    use ``sigma_w2 * mean(x^2) + sigma_b2`` directly: its "activation" is the input).
    """
    sigma_w2, sigma_b2 = _nonnegative("sigma_w2", sigma_w2), _nonnegative("sigma_b2", sigma_b2)
    return sigma_w2 * moments(activation, q_prev)[1] + sigma_b2


def chi(activation, q, sigma_w2):
    """chi = sigma_w2 * E[phi'(sqrt(q) z)^2]; vectorized over q.

    E[delta_l^2] / E[delta_(l+1)^2] between hidden layers of equal width, with ``q`` = q^l
    the pre-activation second moment of the lower layer l (whose delta is computed) and
    ``sigma_w2`` that of W_(l+1). For unequal widths multiply by n_(l+1)/n_l (see ``predict``).
    """
    sigma_w2 = _nonnegative("sigma_w2", sigma_w2)
    act = _activation(activation)
    if _closed_form(act):  # E[phi'^2] does not depend on q
        moments(act, q)  # validates q
        c = _times_gain(sigma_w2, act.gaussian_gains()[1])
        return c if np.ndim(q) == 0 else np.full(np.shape(q), c)
    return sigma_w2 * moments(act, q)[2]


def fixed_point(activation, sigma_w2, sigma_b2, q0=1.0):
    """q* = lim_l q^l: the limit of iterating ``length_map`` from q^0 = ``q0``.

    Closed-form moments (relu, leaky_relu, identity): the map is affine, q -> c q + sigma_b2
    with c = sigma_w2 * E[phi^2]/q, so q* = sigma_b2 / (1 - c) for c < 1; for c = 1 and
    sigma_b2 = 0 every q is fixed and q0 is returned; otherwise (c > 1, or c = 1 with
    sigma_b2 > 0) q grows without bound and FixedPointError is raised (except for q0 = 0 =
    sigma_b2, a fixed point).

    Bounded phi (sigmoid, tanh, softsign): the limit is finite. For these activations F(q)/q
    (F the map) is strictly decreasing in q > 0 whenever F is not identically sigma_b2
    (|phi(u)/u| decreases in |u| for tanh and softsign; sigmoid = 1/2 + tanh(u/2)/2),
    and F is increasing, so the iteration converges monotonically, from any q0 > 0, to the
    unique positive root of F(q) = q when there is one. There is one unless F(0) = 0
    (sigma_b2 = 0 and phi(0) = 0: tanh, softsign) and chi(0) = sigma_w2 phi'(0)^2 <= 1, in
    which case q* = 0 (the ordered phase; at chi(0) = 1 the iteration only approaches 0 like
    1/l). Instead of iterating, which is arbitrarily slow near that transition, the positive
    root is found by bisection on log q, bracketed by F(0) (or by halving, if F(0) = 0) and
    by sigma_w2 * sup phi^2 + sigma_b2; the result satisfies |F(q*) - q*| <~ 1e-15 q*.
    """
    act = _activation(activation)
    sigma_w2, sigma_b2 = _nonnegative("sigma_w2", sigma_w2), _nonnegative("sigma_b2", sigma_b2)
    q0 = _nonnegative("q0", q0)
    if _closed_form(act):
        c = _times_gain(sigma_w2, act.gaussian_gains()[0])
        if c < 1.0:
            return sigma_b2 / (1.0 - c)
        if sigma_b2 == 0.0 and (c == 1.0 or q0 == 0.0):
            return q0
        raise FixedPointError(
            f"length map of {act.name} with sigma_w2={sigma_w2:g}, sigma_b2={sigma_b2:g} has no finite "
            f"limit: q -> {c:g} q + {sigma_b2:g} grows without bound (need sigma_w2 * E[phi^2]/q < 1)")

    def F(q):
        return length_map(act, q, sigma_w2, sigma_b2)

    f0 = F(0.0)
    if f0 == 0.0:  # q = 0 is a fixed point
        if q0 == 0.0 or chi(act, 0.0, sigma_w2) <= 1.0:
            return 0.0
    hi = sigma_w2 * act.sup_square + sigma_b2  # F(q) <= hi
    if F(hi) == hi:
        return hi
    if f0 > 0.0:
        lo = f0  # F(lo) >= F(0) = lo
    else:
        lo = hi
        while not F(lo) > lo:
            lo *= 0.5
            if lo < 1e-300:
                raise FixedPointError(f"no positive fixed point found for {act.name} with "
                                      f"sigma_w2={sigma_w2:g}, sigma_b2={sigma_b2:g}")
    if F(lo) == lo:
        return lo
    # invariant: F(lo) > lo, F(hi) < hi
    for _ in range(2000):
        mid = math.sqrt(lo * hi)
        if not lo < mid < hi:
            break
        if F(mid) > mid:
            lo = mid
        else:
            hi = mid
    q = 0.5 * (lo + hi)
    if not abs(F(q) - q) <= 1e-12 * q:  # cannot happen for the supported activations
        raise FixedPointError(f"bisection for the fixed point of {act.name} did not converge: "
                              f"q={q!r}, F(q)={F(q)!r}")
    return q


def depth_scale(activation, sigma_w2, sigma_b2):
    """xi = -1 / log chi(q*): the gradient depth scale at the fixed point q*.

    E[delta^2] ~ exp(-l / xi) deep in the network: xi > 0 in the ordered phase (chi < 1,
    vanishing gradients), xi < 0 in the chaotic phase (chi > 1, exploding; they grow by e every
    |xi| layers). Exactly at chi = 1 (criticality) xi = +inf; for chi = 0 (sigma_w2 = 0) xi = 0.
    With closed-form moments (relu, leaky_relu, identity) chi does not depend on q, so no fixed point is needed
    (and none may exist). Never nan.
    """
    act = _activation(activation)
    sigma_w2, sigma_b2 = _nonnegative("sigma_w2", sigma_w2), _nonnegative("sigma_b2", sigma_b2)
    q_star = 1.0 if _closed_form(act) else fixed_point(act, sigma_w2, sigma_b2)
    c = chi(act, q_star, sigma_w2)
    if c == 1.0:
        return math.inf
    if c == 0.0:
        return 0.0
    return -1.0 / math.log(c)


def critical_sigma_w2(activation, sigma_b2, rtol=1e-12):
    """sigma_w2 on the order-to-chaos transition: chi(q*) = 1 for bias variance ``sigma_b2``.

    Closed forms: 1 / E[phi'^2] (relu 2, leaky_relu 2/(1+alpha^2), identity 1; any sigma_b2).
    Otherwise by bisection on sigma_w2 to relative width ``rtol``, which assumes chi(q*(sigma_w2), sigma_w2)
    increases with sigma_w2 (it does for sigmoid, tanh and softsign: checked in the tests);
    chi < 1 below 1/max(phi')^2 (chi <= sigma_w2 max(phi')^2), and the upper end is found by
    doubling. For tanh and softsign at sigma_b2 = 0 (phi(0) = 0) the answer is exactly
    1/phi'(0)^2 = 1, returned without bisection: chi(q*) - 1 grows only quadratically in
    sigma_w2 - 1 above it, so a bisection would return 1 + O(1e-8).
    """
    act = _activation(activation)
    sigma_b2 = _nonnegative("sigma_b2", sigma_b2)
    if _closed_form(act):
        return 1.0 / act.gaussian_gains()[1]

    phi0, _, dphi0_sq = _moments_at_zero(act)
    if sigma_b2 == 0.0 and phi0 == 0.0:
        # q* = 0 for sigma_w2 <= 1/phi'(0)^2 (the ordered phase), where chi(q*) = sigma_w2 phi'(0)^2
        # reaches 1 exactly; above it q* > 0 and chi(q*) > 1.
        return 1.0 / dphi0_sq

    def excess(sw2):
        return chi(act, fixed_point(act, sw2, sigma_b2), sw2) - 1.0

    lo = 1.0 / act.max_derivative ** 2  # chi(q*) <= sigma_w2 * max phi'^2 <= 1 here
    hi = 2.0 * lo
    while excess(hi) <= 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e12:
            raise ArithmeticError(f"no critical sigma_w2 below 1e12 for {act.name}, sigma_b2={sigma_b2:g}")
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0.0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def predict(sizes, activation, init, input_ms, sigma_b2=0.0, init_params=None):
    """Mean-field prediction of ``MLP.probe`` statistics at initialization (dropout off).

    ``sizes`` is ``MLP.sizes`` = [n_in, hidden..., n_out]; ``input_ms`` = mean(x^2) over
    examples and features; ``sigma_b2`` = MLP's ``sigma_b ** 2``; ``init_params`` as for MLP;
    ``activation`` a name or an instance (``MLP.activation``). Returns arrays over layers l = 1..L (index l-1):

      preact_var   q^l (second moment = variance of z_l; E[z_l] = 0), every layer incl. L
      act_mean     E[phi(z_l)] for hidden layers; 0 for the linear output layer
      act_var      E[phi(z_l)^2] - E[phi(z_l)]^2 for hidden layers; q^L for the output layer
      sigma_w2     sigma_w^2 of W_l (``sigma_w2(init, n_(l-1), n_l)``)
      chi          E[delta_l^2] / E[delta_(l+1)^2]
                     = sigma_w2_(l+1) * (n_(l+1)/n_l) * E[phi'(sqrt(q^l) z)^2]  for l < L; nan for L
      delta_ms     E[delta_l^2] / E[delta_L^2]: the product of chi over layers l..L-1 (1 at L);
                   compare with probe's delta_ms / delta_ms[-1]

    The output layer's delta_ms itself depends on the loss and is not predicted.
    """
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must list >= 2 positive widths [n_in, ..., n_out], got {sizes}")
    act = _activation(activation)
    input_ms = _nonnegative("input_ms", input_ms)
    sigma_b2 = _nonnegative("sigma_b2", sigma_b2)
    init_params = dict(init_params or {})
    L = len(sizes) - 1
    sw2 = np.array([sigma_w2(init, sizes[l - 1], sizes[l], **init_params) for l in range(1, L + 1)])
    q = np.empty(L)
    act_mean, act_var, dphi2 = np.zeros(L), np.empty(L), np.empty(L)
    prev_ms = input_ms
    for i in range(L):
        q[i] = sw2[i] * prev_ms + sigma_b2
        if i == L - 1:
            act_var[i] = q[i]
            break
        mean, ms, dphi2[i] = moments(act, q[i])
        act_mean[i], act_var[i] = mean, max(ms - mean * mean, 0.0)
        prev_ms = ms
    chi_l = np.full(L, np.nan)
    delta_ms = np.ones(L)
    for i in range(L - 2, -1, -1):
        chi_l[i] = sw2[i + 1] * sizes[i + 2] / sizes[i + 1] * dphi2[i]
        delta_ms[i] = chi_l[i] * delta_ms[i + 1]
    return {"preact_var": q, "act_mean": act_mean, "act_var": act_var, "sigma_w2": sw2,
            "chi": chi_l, "delta_ms": delta_ms}
