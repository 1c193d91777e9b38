"""Optional cross-check against PyTorch itself (skipped when torch is not installed).

The hand-written references in the other modules are the main tests; this module
checks that they, and nncore, agree with torch's actual implementation.
"""
import math

import numpy as np
import pytest

from nncore import MLP, Grads, activations, optimizers

torch = pytest.importorskip("torch")
F = torch.nn.functional

# torch's function for each activation, built from the nncore instance's parameters
TORCH_ACTIVATIONS = {
    "sigmoid": lambda act: torch.sigmoid,
    "tanh": lambda act: torch.tanh,
    "relu": lambda act: torch.relu,
    "leaky_relu": lambda act: (lambda z: F.leaky_relu(z, negative_slope=act.alpha)),
    "softsign": lambda act: F.softsign,
    "identity": lambda act: (lambda z: z),
}
# every registered activation, each with its default parameters and, where it takes any, others
ORACLE_CASES = [(name, {}) for name in sorted(activations.REGISTRY)] + [("leaky_relu", {"alpha": 0.2})]


def _torch_activation(name, params):
    """torch's phi for nncore's activation ``name``; a registered activation without one FAILS."""
    if name not in TORCH_ACTIVATIONS:
        pytest.fail(f"activation {name!r} is registered but has no torch equivalent in TORCH_ACTIVATIONS")
    return TORCH_ACTIVATIONS[name](activations.get(name, **params))


def test_every_parametrized_activation_has_a_case():
    assert {name for name, _ in ORACLE_CASES} == set(activations.REGISTRY)
    for name, params in ORACLE_CASES:
        _torch_activation(name, params)


def _torch_loss(name, z, y):
    if name == "cross_entropy":
        return F.cross_entropy(z, torch.as_tensor(y, dtype=torch.long))
    if name == "bce":
        return F.binary_cross_entropy_with_logits(z, torch.as_tensor(y))
    return F.mse_loss(z, torch.as_tensor(y))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("act, params", ORACLE_CASES, ids=[f"{n}{p or ''}" for n, p in ORACLE_CASES])
def test_gradients_match_autograd(ref, act, params, loss, dropout):
    phi = _torch_activation(act, params)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4))
    y = ref.make_targets(loss, rng, 9, 3)
    net = MLP(4, [6, 5, 6], 3, activation=act, loss=loss, dropout=dropout, seed=2, sigma_b=0.2,
              activation_params=params)
    masks = None
    if dropout:
        net.loss_and_grads(X, y)
        masks = [m.copy() for m in net.last_masks]
    value, grads = net.loss_and_grads(X, y, masks=masks, deltas=True)
    Ws = [torch.tensor(w, requires_grad=True) for w in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = torch.tensor(X)
    zs = []
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = a @ W + b
        z.retain_grad()
        zs.append(z)
        if l < len(Ws) - 1:
            a = phi(z)
            if masks is not None:
                a = a * torch.tensor(masks[l])
        else:
            a = z
    tl = _torch_loss(loss, a, y)
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-12)
    for l in range(len(Ws)):
        np.testing.assert_allclose(grads.weights[l], Ws[l].grad.numpy(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(grads.biases[l], bs[l].grad.numpy(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(grads.deltas[l], zs[l].grad.numpy(), rtol=1e-10, atol=1e-15)


TORCH_OPT = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adadelta": (torch.optim.Adadelta, {}),
    "adam": (torch.optim.Adam, {}),
}
CASES = [
    ("sgd", {}), ("sgd", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3}), ("momentum", {}), ("nesterov", {}),
    ("adagrad", {}), ("adagrad", {"lr_decay": 0.05, "initial_accumulator_value": 0.2}),
    ("rmsprop", {}), ("rmsprop", {"centered": True}), ("rmsprop", {"momentum": 0.9}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adadelta", {}), ("adam", {}), ("adam", {"amsgrad": True}), ("adam", {"betas": (0.8, 0.99), "eps": 1e-6}),
]


@pytest.mark.parametrize("extra", [{}, {"weight_decay": 0.05}, {"clip_norm": 2.0, "weight_decay": 0.1}],
                         ids=["plain", "wd", "clip+wd"])
@pytest.mark.parametrize("scale", [1.0, 1e-8], ids=["g~1", "g~1e-8"])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{kw}" for n, kw in CASES])
def test_optimizer_matches_torch(name, kw, scale, extra):
    net = MLP(3, [4, 5], 2, sigma_b=0.3, seed=7)
    params = [torch.tensor(p.copy(), requires_grad=True) for p in net.weights + net.biases]
    cls, base = TORCH_OPT[name]
    tkw = {**base, **kw}
    if "weight_decay" in extra:
        tkw["weight_decay"] = extra["weight_decay"]
    topt = cls(params, **tkw)
    opt = optimizers.get(name, **kw, **extra)
    rng = np.random.default_rng(1)
    n_w = len(net.weights)
    for t in range(20):
        s = scale * math.exp(rng.normal())
        gs = [s * rng.normal(size=p.shape) for p in net.weights + net.biases]
        opt.step(net, Grads([g.copy() for g in gs[:n_w]], [g.copy() for g in gs[n_w:]], []))
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        if "clip_norm" in extra:
            torch.nn.utils.clip_grad_norm_(params, extra["clip_norm"])
        before = [p.detach().clone() for p in params[:n_w]]
        topt.step()
        for i, (p, tp) in enumerate(zip(net.weights + net.biases, params)):
            np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-11, atol=1e-15, err_msg=f"step {t + 1} p{i}")
        np.testing.assert_allclose(net.update_norms, [torch.linalg.norm(p.detach() - b).item()
                                                      for p, b in zip(params[:n_w], before)], rtol=1e-6, atol=1e-14)


# ------------------------------------------- BatchNorm, LayerNorm and residual networks
NORM_CONFIGS = [dict(norm="batch"), dict(norm="layer"), dict(residual=True, residual_scale=0.7),
                dict(norm="batch", residual=True, residual_scale=0.5), dict(norm="layer", residual=True),
                dict(norm="batch", weight_decay=0.01)]
NORM_IDS = ["-".join(f"{k}={v}" for k, v in c.items()) for c in NORM_CONFIGS]


class TorchMLP(torch.nn.Module):
    """The same network in torch: Linear (weight = W^T), BatchNorm1d / LayerNorm, tanh, skip."""

    def __init__(self, net):
        super().__init__()
        self.linears = torch.nn.ModuleList()
        for W, b in zip(net.weights, net.biases):
            lin = torch.nn.Linear(*W.shape, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(W.T))
                lin.bias.copy_(torch.tensor(b))
            self.linears.append(lin)
        self.norms = torch.nn.ModuleList()
        for W, g, b in zip(net.weights, net.norm_scales, net.norm_shifts):
            n = W.shape[1]
            norm = (torch.nn.BatchNorm1d(n, eps=1e-5, momentum=0.1, dtype=torch.float64) if net.norm == "batch"
                    else torch.nn.LayerNorm(n, eps=1e-5, dtype=torch.float64))
            with torch.no_grad():
                norm.weight.copy_(torch.tensor(g))
                norm.bias.copy_(torch.tensor(b))
            self.norms.append(norm)
        self.residual, self.scale = net.residual, net.residual_scale

    def forward(self, x):
        zs = []
        for l, lin in enumerate(self.linears):
            z = lin(x)
            if z.requires_grad:
                z.retain_grad()
            zs.append(z)
            if l == len(self.linears) - 1:
                return z, zs
            h = torch.tanh(self.norms[l](z) if self.norms else z)
            x = x + self.scale * h if self.residual and l >= 1 else h

    def ordered(self):
        """Parameters in the order of MLP.parameters()."""
        return ([lin.weight for lin in self.linears] + [lin.bias for lin in self.linears]
                + [n.weight for n in self.norms] + [n.bias for n in self.norms])


def _as_nncore(i, tensor, n_layers):
    a = tensor.detach().numpy()
    return a.T if i < n_layers else a  # Linear's weight is W^T


def _norm_case(config):
    config = dict(config)
    wd = config.pop("weight_decay", 0.0)
    net = MLP(5, [6, 6, 6], 3, activation="tanh", sigma_b=0.2, seed=4, **config)
    rng = np.random.default_rng(8)
    for g, b in zip(net.norm_scales, net.norm_shifts):
        g[...] = rng.uniform(0.5, 1.5, size=g.shape)
        b[...] = rng.normal(scale=0.3, size=b.shape)
    return net, TorchMLP(net), rng, wd


def _rel_close(got, want, what):
    scale = max(float(np.max(np.abs(want))), 1e-300)
    assert float(np.max(np.abs(got - want))) <= 1e-10 * scale, what


@pytest.mark.parametrize("config", NORM_CONFIGS, ids=NORM_IDS)
def test_norm_and_residual_loss_and_gradients_match_autograd(config):
    net, tnet, rng, _ = _norm_case(config)
    X, y = rng.normal(size=(10, 5)), rng.integers(0, 3, size=10)
    value, grads = net.loss_and_grads(X, y, deltas=True)
    z, zs = tnet(torch.tensor(X))
    tl = F.cross_entropy(z, torch.tensor(y))
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-12)
    L = net.n_layers
    for i, (g, tp) in enumerate(zip(grads.parameters(), tnet.ordered())):
        want = _as_nncore(i, tp.grad, L)
        if net.norm == "batch" and L <= i < 2 * L - 1:
            # b_l before BatchNorm is cancelled by the batch mean: both gradients are rounding noise
            assert np.max(np.abs(g)) < 1e-15 and np.max(np.abs(want)) < 1e-15, i
            continue
        _rel_close(g, want, f"gradient {i}")
    for d, tz in zip(grads.deltas, zs):
        _rel_close(d, tz.grad.numpy(), "delta")
    if net.norm == "batch":
        for n, tn in zip(net.norms, tnet.norms):
            _rel_close(n.running_mean, tn.running_mean.numpy(), "running_mean")
            _rel_close(n.running_var, tn.running_var.numpy(), "running_var")


@pytest.mark.parametrize("config", NORM_CONFIGS, ids=NORM_IDS)
def test_ten_adam_steps_match_torch(config):
    """10 steps of Adam on fresh batches: every parameter, BatchNorm's running averages, the
    evaluation-mode logits and loss, to 1e-10 relative. The one exception is below."""
    lr, eps = 0.01, 1e-8
    net, tnet, rng, wd = _norm_case(config)
    opt = optimizers.get("adam", lr=lr, weight_decay=wd)
    topt = torch.optim.Adam(tnet.ordered(), lr=lr, weight_decay=wd, eps=eps)
    L = net.n_layers
    # b_l before BatchNorm (without weight decay) has a zero gradient up to rounding, which Adam turns
    # into a step of either sign, different in torch and here. |step| <= lr |m_hat| / eps, and
    # |m_hat| <= the largest |gradient| so far (a weighted mean of them), so after both start a step
    # from the same b_l they differ by at most 2 lr G / eps, G that largest gradient of either.
    noisy = [i for i in range(L, 2 * L - 1)] if net.norm == "batch" and not wd else []
    G = 0.0
    for step in range(10):
        X, y = rng.normal(size=(12, 5)), rng.integers(0, 3, size=12)
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
        topt.zero_grad()
        tnet.train()
        F.cross_entropy(tnet(torch.tensor(X))[0], torch.tensor(y)).backward()
        topt.step()
        tparams = tnet.ordered()
        for i in noisy:
            G = max(G, float(np.max(np.abs(grads.parameters()[i]))), float(np.max(np.abs(tparams[i].grad.numpy()))))
        for i, (p, tp) in enumerate(zip(net.parameters(), tparams)):
            want = _as_nncore(i, tp, L)
            if i in noisy:
                assert float(np.max(np.abs(p - want))) <= 2 * lr * G / eps, f"step {step + 1} parameter {i}"
                # torch's value from here on, in both: the running mean and the evaluation carry b_l
                # (the batch mean and b_l - running_mean), and are then compared at 1e-10 like the rest
                p[...] = want
                continue
            _rel_close(p, want, f"step {step + 1} parameter {i}")
        for n, tn in zip(net.norms, tnet.norms):
            if net.norm == "batch":
                _rel_close(n.running_mean, tn.running_mean.numpy(), f"step {step + 1} running_mean")
                _rel_close(n.running_var, tn.running_var.numpy(), f"step {step + 1} running_var")
    X, y = rng.normal(size=(7, 5)), rng.integers(0, 3, size=7)
    tnet.eval()
    with torch.no_grad():
        tz = tnet(torch.tensor(X))[0]
    _rel_close(net.forward(X), tz.numpy(), "evaluation logits")
    assert net.evaluate(X, y)[0] == pytest.approx(F.cross_entropy(tz, torch.tensor(y)).item(), rel=1e-10)
