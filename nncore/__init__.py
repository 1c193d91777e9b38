"""nncore: a NumPy-only MLP instrumented for the study of vanishing and exploding gradients.

    from nncore import MLP, optimizers
    net = MLP(n_in, [width] * depth, n_out, activation="tanh", init="xavier_uniform",
              norm=None, residual=False)   # norm: None | "batch" | "layer"
    loss, grads = net.loss_and_grads(X, y)
    opt = optimizers.get("adam", lr=1e-3)
    opt.step(net, grads)
    stats = net.probe(X, y)

    rnn = RNN(n_in, hidden, n_out, cell="lstm", num_layers=2, forget_bias=1.0)  # X: (batch, T, n_in)
"""
from . import activations, initializers, layers, losses, optimizers, probes, recurrent, training
from .network import MLP, RNN, Grads, RecurrentGrads
from .probes import STATS
from .training import ProbeRecord, TrainResult, train

__all__ = ["MLP", "RNN", "Grads", "RecurrentGrads", "STATS", "ProbeRecord", "TrainResult", "activations", "initializers",
           "layers", "losses", "optimizers", "probes", "recurrent", "train", "training"]
