"""Time nncore's recurrent training step and probe against PyTorch eager, at the shapes of issue 24.

    python -m benchmarks.bench_recurrent [--rounds N] [--json PATH]

Shapes: batch 32, T = 100, H = 64, 8 inputs, 10 classes, float64, one thread (threadpoolctl and
``torch.set_num_threads(1)``), one layer of each cell (rnn is tanh) at its default (PyTorch) init.
``step`` is ``loss_and_grads`` plus an Adam step (input validation included); ``torch`` is
torch.nn.RNN/LSTM/GRU(batch_first) + Linear on the last step, cross-entropy, backward and
torch.optim.Adam; ``probe`` is one ``net.probe`` on the same batch (its forward and backward
with the statistics through time). Targets: step <= 0.8x torch, probe <= 1.5x step.
Timing as benchmarks.bench_step (interleaved blocks, the fastest block's mean, CPU time of the
calling thread). Results also go to benchmarks/results_recurrent.json.
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.bench_step import measure
from nncore import RNN, optimizers

BATCH, T, H, N_IN, N_CLASSES = 32, 100, 64, 8, 10
CELLS = ("rnn", "lstm", "gru")
TARGETS = {"torch": 0.8, "probe": 1.5}
DEFAULT_JSON = Path(__file__).resolve().parent / "results_recurrent.json"


def _batches(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(BATCH, T, N_IN)), rng.integers(0, N_CLASSES, size=BATCH)) for _ in range(n)]


def _torch_step(net):
    """The same network's training step in torch eager (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[net.cell]
    rec = module(N_IN, H, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(H, N_CLASSES, dtype=torch.float64)
    with torch.no_grad():
        for ours, theirs in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"), ("b_ih", "bias_ih_l0"),
                             ("b_hh", "bias_hh_l0")):
            p = net.cells[0].params[ours]
            getattr(rec, theirs).copy_(torch.tensor(p.T if p.ndim == 2 else p))
    opt = torch.optim.Adam([*rec.parameters(), *lin.parameters()], lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(X, y):
        opt.zero_grad(set_to_none=True)
        out, _ = rec(X)
        loss_fn(lin(out[:, -1]), y).backward()
        opt.step()
    return step, torch


def candidates(cell):
    data = _batches()
    net = RNN(N_IN, H, N_CLASSES, cell=cell, seed=0)
    probe_net = RNN(N_IN, H, N_CLASSES, cell=cell, seed=0)
    opt = optimizers.get("adam", lr=1e-3)

    def nncore_step(X, y):
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
    out = {"nncore": (nncore_step, data), "probe": (probe_net.probe, data)}
    made = _torch_step(net)
    if made is not None:
        step, torch = made
        out["torch"] = (step, [(torch.tensor(X), torch.tensor(y)) for X, y in data])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    results = {"machine": platform.processor() or platform.machine(), "numpy": np.__version__, "rows": []}
    print(f"recurrent step: batch {BATCH}, T {T}, H {H}, float64, 1 thread (ms of CPU time per call, best block)")
    print(f"{'cell':>5} {'nncore':>8} {'torch':>8} {'probe':>8} {'/torch':>7} {'probe/step':>10}")
    failures = []
    with threadpool_limits(1):
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            pass
        for cell in CELLS:
            t = measure(candidates(cell), args.rounds, min_block_s=0.05, clock=time.thread_time)
            row = {"cell": cell, **{k: v * 1e3 for k, v in t.items()}}
            row["vs_torch"] = t["nncore"] / t["torch"] if "torch" in t else None
            row["probe_vs_step"] = t["probe"] / t["nncore"]
            results["rows"].append(row)
            torch_ms = f"{row['torch']:8.3f}" if "torch" in row else f"{'-':>8}"
            vs_torch = f"{row['vs_torch']:7.2f}" if row["vs_torch"] else f"{'-':>7}"
            print(f"{cell:>5} {row['nncore']:8.3f} {torch_ms} {row['probe']:8.3f} {vs_torch} {row['probe_vs_step']:10.2f}")
            for key, target in (("vs_torch", "torch"), ("probe_vs_step", "probe")):
                if row[key] is not None and row[key] > TARGETS[target]:
                    failures.append(f"{cell}: {key} {row[key]:.2f} > {TARGETS[target]}")
    print("targets: step <= 0.8x torch, probe <= 1.5x step: " + ("all met" if not failures else "missed: " + "; ".join(failures)))
    results["targets"], results["missed"] = TARGETS, failures
    args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
