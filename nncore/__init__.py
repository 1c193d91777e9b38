"""nncore: a NumPy-only MLP instrumented for the study of vanishing and exploding gradients.

    from nncore import MLP, optimizers
    net = MLP(n_in, [width] * depth, n_out, activation="tanh", init="xavier_uniform",
              norm=None, residual=False)   # norm: None | "batch" | "layer"
    loss, grads = net.loss_and_grads(X, y)
    opt = optimizers.get("adam", lr=1e-3)
    opt.step(net, grads)
    stats = net.probe(X, y)
"""
from . import activations, initializers, layers, losses, optimizers, probes, training
from .network import MLP, Grads
from .probes import STATS
from .training import ProbeRecord, TrainResult, train

__all__ = ["MLP", "Grads", "STATS", "ProbeRecord", "TrainResult", "activations", "initializers",
           "layers", "losses", "optimizers", "probes", "train", "training"]
