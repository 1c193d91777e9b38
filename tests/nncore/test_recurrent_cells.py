"""nncore.recurrent (the cells) and network.RNN: gradients against finite differences of a reference forward
written here from torch's equations (float64), the total dL/dh_t, initializers, and the API."""
import pickle

import numpy as np
import pytest

from nncore import RNN, activations, optimizers
from nncore.recurrent import REGISTRY as CELLS

EPS = 1e-6


# ------------------------------------------------ reference forward, from torch.nn's equations
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_step(cell, phi, x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One step of torch.nn.RNN/LSTM/GRU in row-vector layout: (h_t, c_t)."""
    H = W_hh.shape[0]
    gi, gh = x @ W_ih + b_ih, h @ W_hh + b_hh
    if cell == "rnn":
        return phi(gi + gh), None
    if cell == "lstm":
        a = gi + gh
        i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c
    r = _sig(gi[:, :H] + gh[:, :H])
    z = _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1.0 - z) * n + z * h, None


def ref_loss(net, X, y, params=None, inject=None):
    """Batch-mean loss of ``net``'s equations with its (or the given) parameters; ``inject`` =
    (k, t, dh) adds dh to h_t of layer k (0-based) before it is used further."""
    params = params or [dict(c.params) for c in net.cells] + [dict(net.readout.params)]
    name = net.cell
    phi = activations.get(net.activation.name) if name == "rnn" else None
    seq = [X[:, t] for t in range(X.shape[1])]
    B, H = X.shape[0], net.hidden
    for k in range(net.num_layers):
        P = params[k]
        h, c, out = np.zeros((B, H)), np.zeros((B, H)), []
        for t, x in enumerate(seq):
            h, c = ref_step(name, phi, x, h, c, P["W_ih"], P["W_hh"], P["b_ih"], P["b_hh"])
            if inject is not None and inject[:2] == (k, t):
                h = h + inject[2]
            out.append(h)
        seq = out
    z = seq[-1] @ params[-1]["W"] + params[-1]["b"]
    if net.loss_fn.name == "mse":
        return np.mean((z - y) ** 2)
    m = z.max(axis=1, keepdims=True)
    return np.mean(m[:, 0] + np.log(np.exp(z - m).sum(axis=1)) - z[np.arange(B), y])


def _data(loss, B=3, T=4, n_in=2, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, T, n_in))
    y = rng.normal(size=(B, n_out)) if loss == "mse" else rng.integers(0, n_out, size=B)
    return X, y


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


CASES = [(cell, layers, loss) for cell in CELLS for layers in (1, 2) for loss in ("cross_entropy", "mse")]


@pytest.mark.parametrize("cell,num_layers,loss", CASES, ids=[f"{c}-{k}-{l}" for c, k, l in CASES])
def test_gradients_match_finite_differences(cell, num_layers, loss):
    net = RNN(2, 3, 2, cell=cell, num_layers=num_layers, loss=loss, seed=1,
              forget_bias=0.7 if cell != "rnn" else 0.0)
    X, y = _data(loss)
    value, grads = net.loss_and_grads(X, y, deltas=True)
    assert value == pytest.approx(ref_loss(net, X, y), rel=1e-13)
    params = [dict(c.params) for c in net.cells] + [dict(net.readout.params)]
    analytic = [g for g in grads.cells] + [grads.readout]
    for k, P in enumerate(params):
        for name, p in P.items():
            num = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + EPS
                up = ref_loss(net, X, y, params)
                p[idx] = old - EPS
                down = ref_loss(net, X, y, params)
                p[idx] = old
                num[idx] = (up - down) / (2 * EPS)
            assert _rel(analytic[k][name], num) < 1e-6, (k, name)
    # the total dL/dh_t: the derivative of the loss by a shift of h_t, every layer and step
    for k in range(num_layers):
        num = np.zeros((3, 4, 3))
        for idx in np.ndindex(3, 4, 3):
            shift = np.zeros((3, 3))
            shift[idx[0], idx[2]] = EPS
            up = ref_loss(net, X, y, inject=(k, idx[1], shift))
            down = ref_loss(net, X, y, inject=(k, idx[1], -shift))
            num[idx] = (up - down) / (2 * EPS)
        assert grads.hidden_deltas[k].shape == (3, 4, 3)
        assert _rel(grads.hidden_deltas[k], num) < 1e-6, k


@pytest.mark.parametrize("act", sorted(activations.REGISTRY))
def test_elman_takes_every_registered_activation(act):
    net = RNN(2, 3, 2, activation=act, seed=3, init="normal", init_params={"sigma_w": 1.5}, sigma_b=0.3)
    X, y = _data("cross_entropy", seed=4)
    value, grads = net.loss_and_grads(X, y)
    assert value == pytest.approx(ref_loss(net, X, y), rel=1e-13)
    W = net.cells[0].params["W_hh"]
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        old = W[idx]
        W[idx] = old + EPS
        up = ref_loss(net, X, y)
        W[idx] = old - EPS
        num[idx] = (up - ref_loss(net, X, y)) / (2 * EPS)
        W[idx] = old
    assert _rel(grads.cells[0]["W_hh"], num) < 1e-6


# ----------------------------------------------------------------------- initialization
H = 64


def test_pytorch_default_init_is_uniform_one_over_sqrt_h():
    net = RNN(16, H, 4, cell="lstm")
    bound = 1.0 / np.sqrt(H)
    for p in [*net.cells[0].params.values(), *net.readout.params.values()]:
        assert np.abs(p).max() <= bound
        if p.size >= 256:  # the readout's 4 biases may all lie well inside
            assert np.abs(p).max() > 0.95 * bound
    W = net.cells[0].params["W_hh"]
    assert W.var() == pytest.approx(1.0 / (3 * H), rel=0.05)


def test_normal_init_sets_sigma_w_fan_in_based():
    net = RNN(32, 256, 2, init="normal", init_params={"sigma_w": 2.0}, sigma_b=0.5)
    c = net.cells[0].params
    assert c["W_hh"].var() == pytest.approx(4.0 / 256, rel=0.02)
    assert c["W_ih"].var() == pytest.approx(4.0 / 32, rel=0.05)
    assert c["b_ih"].std() == pytest.approx(0.5, rel=0.2)
    assert not c["b_hh"].any()


def test_orthogonal_and_identity_recurrent_init():
    net = RNN(3, 8, 2, cell="gru", recurrent_init="orthogonal", recurrent_params={"gain": 0.9})
    W = net.cells[0].params["W_hh"]
    for g in range(3):
        block = W[:, 8 * g:8 * (g + 1)]
        np.testing.assert_allclose(block @ block.T, 0.81 * np.eye(8), atol=1e-12)
    irnn = RNN(3, 8, 2, activation="relu", init="normal", recurrent_init="identity")
    np.testing.assert_array_equal(irnn.cells[0].params["W_hh"], np.eye(8))
    assert irnn.cells[0].params["W_ih"].std() > 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forget_bias_goes_to_the_forget_or_update_gate(cell):
    base = RNN(3, 4, 2, cell=cell, seed=5)
    shifted = RNN(3, 4, 2, cell=cell, seed=5, forget_bias=2.0)
    diff = (shifted.cells[0].params["b_ih"] + shifted.cells[0].params["b_hh"]
            - base.cells[0].params["b_ih"] - base.cells[0].params["b_hh"])
    expected = np.zeros_like(diff)
    expected[4:8] = 2.0  # lstm's f (i, f, g, o), gru's z (r, z, n)
    np.testing.assert_allclose(diff, expected, atol=1e-15)


# ------------------------------------------------------------------------------- the API
def test_seeds_dtypes_and_pickling():
    X, y = _data("cross_entropy")
    a, b, c = RNN(2, 3, 2, cell="lstm", seed=4), RNN(2, 3, 2, cell="lstm", seed=4), RNN(2, 3, 2, cell="lstm", seed=5)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    f32 = RNN(2, 3, 2, cell="gru", dtype="float32")
    loss, grads = f32.loss_and_grads(X, y, deltas=True)
    assert all(g.dtype == np.float32 for g in grads.parameters())
    assert grads.hidden_deltas[0].dtype == np.float32
    assert f32.probe(X, y)["delta_ms"].dtype == np.float64
    a.loss_and_grads(X, y)
    copy = pickle.loads(pickle.dumps(a))
    assert copy.cells[0].cache == {}
    assert copy.loss(X, y) == a.loss(X, y)


def test_parameters_and_grads_share_one_order_and_train_with_adam_and_clipping():
    X, y = _data("mse", n_out=1)
    net = RNN(2, 3, 1, cell="gru", num_layers=2, loss="mse")
    _, grads = net.loss_and_grads(X, y)
    assert [p.shape for p in net.parameters()] == [g.shape for g in grads.parameters()]
    assert net.parameters()[0] is net.cells[0].params["W_hh"]
    opt = optimizers.get("adam", lr=0.05, clip_norm=1.0, weight_decay=1e-3)
    first = net.loss(X, y)
    for _ in range(30):
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
    assert net.loss(X, y) < 0.5 * first
    assert net.update_norms.shape == (3,) and (net.update_norms > 0).all()
    assert np.isnan(net.evaluate(X, y)[1])  # no accuracy for a single regression output


def test_mse_takes_real_targets_and_one_hot():
    X, _ = _data("mse")
    net = RNN(2, 3, 2, loss="mse")
    net.loss_and_grads(X, np.array([[0.3, -1.2], [2.0, 0.1], [0.0, 0.5]]))
    _, acc = net.evaluate(X, np.eye(2)[[0, 1, 1]])
    assert 0.0 <= acc <= 1.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(cell="elman"), "unknown cell 'elman'; valid: rnn, lstm, gru"),
    (dict(cell="lstm", activation="relu"), "activation applies to cell 'rnn' only"),
    (dict(activation="swish"), "unknown activation 'swish'"),
    (dict(forget_bias=1.0), "forget_bias applies to cells 'lstm' and 'gru' only"),
    (dict(cell="lstm", forget_bias="1"), "forget_bias must be a number"),
    (dict(num_layers=0), "num_layers must be an integer >= 1, got 0"),
    (dict(init="kaiming"), "unknown init 'kaiming'"),
    (dict(init="identity"), "unknown init 'identity'"),
    (dict(recurrent_init="eye"), "unknown recurrent_init 'eye'"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(dtype="float16"), "unknown dtype 'float16'"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(init_params={"sigmaw": 1.0}), "unknown initializer parameter"),
    (dict(sigma_b=0.1), "sigma_b applies to nncore's initializers; init='pytorch' draws every bias"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RNN(2, 3, 2, **kwargs)


def test_bad_sizes_and_inputs_are_named():
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        RNN(2, 0, 2)
    net = RNN(2, 3, 2)
    with pytest.raises(ValueError, match=r"X must have shape \(batch, T, 2\), got \(3, 2\)"):
        net.loss_and_grads(np.zeros((3, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="at least one step"):
        net.forward(np.zeros((3, 0, 2)))
    with pytest.raises(ValueError, match="X must be finite"):
        net.forward(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="cross_entropy labels must lie in"):
        net.loss_and_grads(np.zeros((3, 4, 2)), np.array([0, 1, 2]))
