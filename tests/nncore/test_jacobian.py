"""MLP.jacobian and MLP.layer_jacobians: every row's Jacobian against central finite differences of
the network's own forward pass, for every MLP architecture (plain, residual, LayerNorm, dropout off);
BatchNorm refused; and, when torch is installed, against torch.func.jacrev of a torch network with
the same weights."""
import numpy as np
import pytest

from nncore import MLP

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ARCHS = {
    "plain": {},
    "residual": {"residual": True, "residual_scale": 0.7},
    "layernorm": {"norm": "layer"},
    "residual_layernorm": {"norm": "layer", "residual": True},
    "dropout": {"dropout": 0.3},
}


def _net(arch, activation="tanh", hidden=(6, 6, 6), n_in=5):
    return MLP(n_in, list(hidden), 3, activation=activation, init="normal", init_params={"sigma_w": 1.3},
               sigma_b=0.3, seed=2, **ARCHS[arch])


def _hidden_out(net, X):
    a = X
    for block in net.hidden_layers:
        a = block.forward(a, False)
    return a


def _block_out(net, l, a_prev):
    return net.hidden_layers[l - 1].forward(a_prev, False)


def _fd(f, X, eps=1e-6):
    """d f(x_n) / d x_n for every row: (batch, n_out, n_in), central differences."""
    out = []
    for n in range(X.shape[0]):
        cols = []
        for j in range(X.shape[1]):
            plus, minus = X[n:n + 1].copy(), X[n:n + 1].copy()
            plus[0, j] += eps
            minus[0, j] -= eps
            cols.append((f(plus) - f(minus))[0] / (2 * eps))
        out.append(np.stack(cols, axis=1))
    return np.stack(out)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("activation", ["tanh", "softsign", "leaky_relu", "sigmoid"])
def test_jacobian_matches_finite_differences(arch, activation):
    net = _net(arch, activation)
    X = np.random.default_rng(0).normal(size=(4, 5))
    J = net.jacobian(X)
    assert J.shape == (4, 6, 5)
    want = _fd(lambda x: _hidden_out(net, x), X)
    np.testing.assert_allclose(J, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_layer_jacobians_match_finite_differences(arch):
    net = _net(arch, hidden=(6, 6, 6), n_in=4)
    X = np.random.default_rng(1).normal(size=(3, 4))
    acts = [X]
    for block in net.hidden_layers:
        acts.append(block.forward(acts[-1], False))
    got = dict(net.layer_jacobians(X))
    assert sorted(got) == [1, 2, 3, 4]
    for l in (1, 2, 3):
        want = _fd(lambda a: _block_out(net, l, a), acts[l - 1])
        assert got[l].shape == (3, 6, acts[l - 1].shape[1])
        np.testing.assert_allclose(got[l], want, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(got[4], np.broadcast_to(net.weights[-1].T, (3, 3, 6)))


def test_relu_jacobian_matches_finite_differences():
    net = _net("plain", "relu")
    X = np.random.default_rng(3).normal(size=(5, 5))
    J = net.jacobian(X)
    np.testing.assert_allclose(J, _fd(lambda x: _hidden_out(net, x), X, eps=1e-7), rtol=1e-5, atol=1e-7)


def test_jacobian_of_a_linear_network_is_the_weight_product():
    net = MLP(4, [5, 3], 2, activation="identity", init="normal", seed=0)
    J = net.jacobian(np.ones((2, 4)))
    want = (net.weights[0] @ net.weights[1]).T
    np.testing.assert_allclose(J, np.broadcast_to(want, (2, 3, 4)), rtol=1e-12)


def test_batchnorm_has_no_row_jacobian():
    net = _net("plain")
    bn = MLP(5, [6, 6], 3, norm="batch")
    X = np.zeros((2, 5))
    with pytest.raises(ValueError, match="rows are coupled"):
        bn.jacobian(X)
    with pytest.raises(ValueError, match="rows are coupled"):
        next(bn.layer_jacobians(X))
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        net.jacobian(np.zeros((2, 4)))


def test_jacobian_leaves_training_unchanged():
    net = _net("dropout")
    X = np.random.default_rng(4).normal(size=(6, 5))
    y = np.arange(6) % 3
    before = net.loss_and_grads(X, y, train=False)[1].weights
    net.jacobian(X)
    after = net.loss_and_grads(X, y, train=False)[1].weights
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("arch", ["plain", "residual", "layernorm", "residual_layernorm"])
def test_jacobian_matches_torch_jacrev(arch):
    torch = pytest.importorskip("torch")
    net = _net(arch)
    X = np.random.default_rng(5).normal(size=(3, 5))
    Ws = [torch.tensor(W) for W in net.weights]
    bs = [torch.tensor(b) for b in net.biases]

    def hidden(x):  # one row, written from torch's modules
        a = x
        for l in range(net.depth):
            z = a @ Ws[l] + bs[l]
            if net.norm == "layer":
                z = torch.nn.functional.layer_norm(z, (z.shape[-1],), eps=1e-5)
            h = torch.tanh(z)
            a = a + net.residual_scale * h if net.residual and l >= 1 else h
        return a

    want = torch.stack([torch.func.jacrev(hidden)(torch.tensor(x)) for x in X]).numpy()
    np.testing.assert_allclose(net.jacobian(X), want, rtol=1e-10, atol=1e-12)
