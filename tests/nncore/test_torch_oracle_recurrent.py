"""Optional cross-check of nncore's RNN, LSTM and GRU against torch.nn itself (skipped without torch):
the loss, every gradient, the total dL/dh_t of every layer and step, and 10 Adam steps with clipping."""
import numpy as np
import pytest

from nncore import RNN, optimizers

torch = pytest.importorskip("torch")
F = torch.nn.functional
MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
NAMES = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}
RTOL = 1e-10


def _torch_layers(net):
    """One single-layer torch module per stacked layer, holding nncore's parameters (transposed)."""
    mods = []
    for k, cell in enumerate(net.cells):
        kw = {"nonlinearity": net.activation.name} if net.cell == "rnn" else {}
        m = MODULES[net.cell](cell.params["W_ih"].shape[0], net.hidden, batch_first=True, dtype=torch.float64, **kw)
        with torch.no_grad():
            for ours, theirs in NAMES.items():
                p = cell.params[ours]
                getattr(m, theirs).copy_(torch.tensor(p.T if p.ndim == 2 else p))
        mods.append(m)
    lin = torch.nn.Linear(net.hidden, net.n_out, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(net.readout.params["W"].T))
        lin.bias.copy_(torch.tensor(net.readout.params["b"]))
    return mods, lin


def _loss(net, z, y):
    return F.mse_loss(z, torch.tensor(y)) if net.loss_fn.name == "mse" else F.cross_entropy(z, torch.tensor(y))


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= RTOL * scale, what


CASES = [("rnn", "tanh", 1), ("rnn", "relu", 2), ("rnn", "tanh", 2),  # torch.nn.RNN: tanh or relu only
         ("lstm", "tanh", 1), ("lstm", "tanh", 2),
         ("gru", "tanh", 1), ("gru", "tanh", 2)]


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("cell,activation,num_layers", CASES, ids=[f"{c}-{a}-{k}" for c, a, k in CASES])
def test_loss_gradients_and_hidden_deltas_match_torch(cell, activation, num_layers, loss):
    rng = np.random.default_rng(0)
    B, T, n_in, n_out = 5, 9, 3, 4
    X = rng.normal(size=(B, T, n_in))
    y = rng.normal(size=(B, n_out)) if loss == "mse" else rng.integers(0, n_out, size=B)
    net = RNN(n_in, 6, n_out, cell=cell, activation=activation, num_layers=num_layers, loss=loss, seed=3,
              forget_bias=1.0 if cell != "rnn" else 0.0)
    value, grads = net.loss_and_grads(X, y, deltas=True)
    mods, lin = _torch_layers(net)
    # the fused modules over the whole sequence: the loss and every parameter's gradient
    seq = torch.tensor(X)
    for m in mods:
        seq, _ = m(seq)
    tl = _loss(net, lin(seq[:, -1]), y)
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-12)
    for k, m in enumerate(mods):
        for ours, theirs in NAMES.items():
            g = getattr(m, theirs).grad
            _close(grads.cells[k][ours], g.T if g.ndim == 2 else g, f"layer {k + 1} {ours}")
    _close(grads.readout["W"], lin.weight.grad.T, "readout W")
    _close(grads.readout["b"], lin.bias.grad, "readout b")
    # the same modules one step at a time, so that every h_t of every layer keeps its total gradient
    for m in mods + [lin]:
        m.zero_grad()
    inputs, hidden = [torch.tensor(X[:, t:t + 1]) for t in range(T)], []
    for m in mods:
        state, outs = None, []
        for x in inputs:
            out, state = m(x, state)
            out.retain_grad()
            outs.append(out)
            # the next step reads this very tensor, so its gradient is the total dL/dh_t
            h = out.transpose(0, 1)
            state = (h, state[1]) if isinstance(state, tuple) else h
        hidden.append(outs)
        inputs = outs
    _loss(net, lin(inputs[-1][:, 0]), y).backward()
    for k, outs in enumerate(hidden):
        _close(grads.hidden_deltas[k], torch.cat([o.grad for o in outs], dim=1), f"dL/dh_t of layer {k + 1}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_ten_adam_steps_with_clipping_match_torch(cell):
    rng = np.random.default_rng(1)
    B, T, n_in, n_out = 6, 12, 2, 1
    net = RNN(n_in, 5, n_out, cell=cell, num_layers=2, loss="mse", seed=4)
    mods, lin = _torch_layers(net)
    params = [p for m in mods + [lin] for p in m.parameters()]
    topt = torch.optim.Adam(params, lr=0.05)
    opt = optimizers.get("adam", lr=0.05, clip_norm=0.5)
    clipped = 0
    for step in range(10):
        X, y = rng.normal(size=(B, T, n_in)), rng.normal(size=(B, n_out))
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
        clipped += opt.last_clipped
        topt.zero_grad()
        seq = torch.tensor(X)
        for m in mods:
            seq, _ = m(seq)
        F.mse_loss(lin(seq[:, -1]), torch.tensor(y)).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        topt.step()
        for k, m in enumerate(mods):
            for ours, theirs in NAMES.items():
                p = getattr(m, theirs)
                _close(net.cells[k].params[ours], p.T if p.ndim == 2 else p, f"step {step + 1} layer {k + 1} {ours}")
        _close(net.readout.params["W"], lin.weight.T, f"step {step + 1} readout W")
    assert clipped > 0  # the threshold is met, so clipping is exercised
