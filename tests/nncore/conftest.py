"""Independent reference implementations for the nncore tests.

Everything here is written from the textbook formulas, without calling nncore,
so that the tests compare nncore against something it did not compute itself.
The helpers are exposed through the ``ref`` fixture.
"""
import math
import types

import numpy as np
import pytest

from nncore.activations import REGISTRY

# every activation of the registry; phi and dphi below give each one an independent reference
ACTIVATIONS = tuple(sorted(REGISTRY))
LOSSES = ("cross_entropy", "bce", "mse")
LEAKY_ALPHA = 0.01  # nncore's default


# --------------------------------------------------------------- activations
def _sigmoid_scalar(x):
    x = float(x)
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # math.exp underflows silently to 0.0
    return e / (1.0 + e)


def sigmoid(z):
    """Elementwise logistic function, one Python float at a time (no NumPy ufunc tricks)."""
    z = np.asarray(z, dtype=np.float64)
    return np.array([_sigmoid_scalar(x) for x in z.reshape(-1)]).reshape(z.shape)


def phi(name, z, alpha=LEAKY_ALPHA):
    """phi(z) from the textbook formula."""
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "softsign":
        return z / (1.0 + np.abs(z))
    if name == "identity":
        return z + 0.0
    raise KeyError(name)


def dphi(name, z, alpha=LEAKY_ALPHA):
    """phi'(z) from the textbook formula."""
    if name == "sigmoid":
        return sigmoid(z) * sigmoid(-z)  # = s (1 - s), accurate in both tails
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if name == "softsign":
        return 1.0 / (1.0 + np.abs(z)) ** 2
    if name == "identity":
        return np.ones_like(z)
    raise KeyError(name)


MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "softsign": 1.0, "identity": 1.0}


# --------------------------------------------------------------------- losses
def loss_and_dz(name, z, y):
    """(batch-mean loss, dL/dz) written out from the torch.nn definitions."""
    B = z.shape[0]
    if name == "cross_entropy":
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        loss = np.mean(lse - z[np.arange(B), y])
        p = np.exp(z - lse[:, None])
        onehot = np.zeros_like(z)
        onehot[np.arange(B), y] = 1.0
        return float(loss), (p - onehot) / B
    if name == "bce":
        # -[y log s + (1-y) log(1-s)], s = sigmoid(z)  ==  softplus(z) - y z
        loss = np.mean(np.logaddexp(0.0, z) - y * z)
        return float(loss), (phi("sigmoid", z) - y) / z.size
    if name == "mse":
        r = z - y
        return float(np.mean(r * r)), 2.0 * r / z.size
    raise KeyError(name)


def make_targets(name, rng, B, n_out):
    if name == "cross_entropy":
        y = rng.integers(0, n_out, size=B)
        y[:n_out] = np.arange(min(n_out, B))  # every class present
        return y
    if name == "bce":
        return (rng.random((B, n_out)) < 0.5).astype(np.float64)
    if name == "mse":
        return rng.normal(size=(B, n_out))
    raise KeyError(name)


# -------------------------------------------------------------------- network
def forward(Ws, bs, X, act, masks=None, alpha=LEAKY_ALPHA, z_shift=None):
    """Hand-written forward pass. Returns (zs, hs, as_): pre-activations of layers
    1..L, phi(z) of the hidden layers, and the hidden outputs after dropout.
    ``z_shift = (l, array)`` adds ``array`` to z_l (0-based l) before phi."""
    zs, hs, as_ = [], [], []
    a = X
    L = len(Ws)
    for l in range(L):
        z = a @ Ws[l] + bs[l]
        if z_shift is not None and z_shift[0] == l:
            z = z + z_shift[1]
        zs.append(z)
        if l == L - 1:
            break
        h = phi(act, z, alpha)
        hs.append(h)
        a = h * masks[l] if masks is not None else h
        as_.append(a)
    return zs, hs, as_


def backward(Ws, X, zs, as_, act, loss, y, masks=None, alpha=LEAKY_ALPHA):
    """Hand-written back-propagation. Returns (loss, deltas, gW, gb) with
    deltas[l] = dL/dz_(l+1) for the batch-mean loss."""
    L = len(Ws)
    value, d = loss_and_dz(loss, zs[-1], y)
    deltas = [None] * L
    gW = [None] * L
    gb = [None] * L
    for l in range(L - 1, -1, -1):
        deltas[l] = d
        a_prev = X if l == 0 else as_[l - 1]
        gW[l] = a_prev.T @ d
        gb[l] = d.sum(axis=0)
        if l > 0:
            d = d @ Ws[l].T
            if masks is not None:
                d = d * masks[l - 1]
            d = d * dphi(act, zs[l - 1], alpha)
    return value, deltas, gW, gb


def total_loss(Ws, bs, X, y, act, loss, masks=None, alpha=LEAKY_ALPHA, z_shift=None):
    zs, _, _ = forward(Ws, bs, X, act, masks, alpha, z_shift)
    return loss_and_dz(loss, zs[-1], y)[0]


def rel_err(num, ana, tiny=1e-12):
    """max|num - ana| / max(max|num|, max|ana|, tiny)."""
    num = np.asarray(num, dtype=np.float64)
    ana = np.asarray(ana, dtype=np.float64)
    scale = max(np.max(np.abs(num)), np.max(np.abs(ana)), tiny)
    return float(np.max(np.abs(num - ana)) / scale)


def numerical_grad(f, x, eps=1e-6):
    """Centred finite differences of the scalar f() with respect to the array x (perturbed in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2.0 * eps)
    return g


@pytest.fixture(scope="module")
def single_thread_blas():
    """One BLAS thread for modules that use it (``pytestmark = pytest.mark.usefixtures(...)``).

    These tests multiply small matrices (the largest is a 512x512 QR), where one thread is
    fastest; with OpenBLAS's default of one thread per core, its threads spin-wait when the
    cores are shared, and a 512x512 QR or a 40x300x300 GEMM took seconds instead of
    milliseconds on a busy 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def classification_data(n_in, n_out, B, seed=0):
    """X ~ N(0, 1) of shape (B, n_in) and integer labels in which every class occurs (B >= n_out)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n_in))
    y = rng.integers(0, n_out, size=B)
    y[:n_out] = np.arange(n_out)
    return X, y


@pytest.fixture
def ref():
    return types.SimpleNamespace(
        ACTIVATIONS=ACTIVATIONS, LOSSES=LOSSES, MAX_DERIVATIVE=MAX_DERIVATIVE, LEAKY_ALPHA=LEAKY_ALPHA,
        sigmoid=sigmoid, phi=phi, dphi=dphi, loss_and_dz=loss_and_dz, make_targets=make_targets, forward=forward,
        backward=backward, total_loss=total_loss, rel_err=rel_err, numerical_grad=numerical_grad,
        classification_data=classification_data,
    )
