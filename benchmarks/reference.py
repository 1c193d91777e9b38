"""The plain NumPy MLP that the benchmark holds nncore against: no probes, no validation, no
buffers, no threads; tanh or relu hidden layers, softmax cross-entropy, SGD or Adam (torch's)."""
import numpy as np


class ReferenceMLP:
    def __init__(self, weights, biases, activation, optimizer, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params = [w.copy() for w in weights] + [b.copy() for b in biases]
        self.L, self.relu, self.adam, self.lr, self.betas, self.eps = len(weights), activation == "relu", optimizer == "adam", lr, betas, eps
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, X, y):
        Ws, bs = self.params[:self.L], self.params[self.L:]
        acts = [X]
        for W, b in zip(Ws[:-1], bs[:-1]):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0.0) if self.relu else np.tanh(z))
        z = acts[-1] @ Ws[-1] + bs[-1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = -np.mean(np.log(p[rows, y]))
        d = p
        d[rows, y] -= 1.0
        d /= len(y)
        gW, gb = [None] * self.L, [None] * self.L
        for l in range(self.L - 1, -1, -1):
            gW[l], gb[l] = acts[l].T @ d, d.sum(axis=0)
            if l:
                d = d @ Ws[l].T
                d *= (acts[l] > 0) if self.relu else 1.0 - acts[l] * acts[l]
        self.t += 1
        (b1, b2), t = self.betas, self.t
        for i, (p, g) in enumerate(zip(self.params, gW + gb)):
            if self.adam:
                self.m[i] = b1 * self.m[i] + (1.0 - b1) * g
                self.v[i] = b2 * self.v[i] + (1.0 - b2) * (g * g)
                p -= self.lr / (1.0 - b1 ** t) * (self.m[i] / (np.sqrt(self.v[i]) / np.sqrt(1.0 - b2 ** t) + self.eps))
            else:
                p -= self.lr * g
        return loss
