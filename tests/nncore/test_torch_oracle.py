"""Optional cross-check against PyTorch itself (skipped when torch is not installed).

The hand-written references in the other modules are the main tests; this module
checks that they, and nncore, agree with torch's actual implementation.
"""
import math

import numpy as np
import pytest

from nncore import MLP, Grads, optimizers

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
    "softsign": F.softsign,
    "identity": lambda z: z,
}


def _torch_loss(name, z, y):
    if name == "cross_entropy":
        return F.cross_entropy(z, torch.as_tensor(y, dtype=torch.long))
    if name == "bce":
        return F.binary_cross_entropy_with_logits(z, torch.as_tensor(y))
    return F.mse_loss(z, torch.as_tensor(y))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_gradients_match_autograd(ref, act, loss, dropout):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4))
    y = ref.make_targets(loss, rng, 9, 3)
    net = MLP(4, [6, 5, 6], 3, activation=act, loss=loss, dropout=dropout, seed=2, sigma_b=0.2)
    masks = None
    if dropout:
        net.loss_and_grads(X, y)
        masks = [m.copy() for m in net.last_masks]
    value, grads = net.loss_and_grads(X, y, masks=masks)
    Ws = [torch.tensor(w, requires_grad=True) for w in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = torch.tensor(X)
    zs = []
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = a @ W + b
        z.retain_grad()
        zs.append(z)
        if l < len(Ws) - 1:
            a = ACTIVATIONS[act](z)
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
