"""Time nncore's training step and probe pass at the study's shapes, against the plain NumPy MLP
of benchmarks/reference.py and, when it is installed, PyTorch eager.

    python -m benchmarks.bench_step [--rounds N] [--json PATH]

Study shapes: width 64, batch 64, depths 5, 20 and 50, float64, one BLAS thread (what every
worker of ``make sweep`` runs), for SGD (lr 0.05) with relu and he_uniform and Adam (lr 1e-3) with
tanh and xavier_uniform; 64 inputs and 10 classes as digits. ``step`` is ``loss_and_grads`` plus
``opt.step`` (input validation included); ``probe`` is one ``net.probe`` on the same batch.
Targets: step <= 1.1x the reference and <= 0.8x torch (``torch.set_num_threads(1)``), probe
<= 1.5x a step. Also (depth 20, width 256, batch 128) with 1 and 2 threads, without a target.

Timing: the candidates of one configuration are timed in interleaved blocks (rotating order,
one untimed call before each block), so that load from other processes hits them alike; each
figure is the fastest block's mean time per call (on a shared machine the median measures the
neighbours' load more than the code). At the study shapes everything runs in the calling thread
(one BLAS thread, torch.set_num_threads(1)), so a block is timed by that thread's CPU time: on a
quiet machine the same as the wall clock, and on a loaded one it leaves out the time the thread
waited for a core (with the two cores busy, most 20 ms blocks lost some to other processes). The
two-thread configuration is timed by the wall clock. Results also go to benchmarks/results.json.
"""
import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.reference import ReferenceMLP
from nncore import MLP, optimizers

STUDY_DEPTHS = (5, 20, 50)
STUDY = {"sgd": ("relu", "he_uniform", 0.05), "adam": ("tanh", "xavier_uniform", 1e-3)}
TARGETS = {"reference": 1.1, "torch": 0.8, "probe": 1.5}
N_IN, N_CLASSES = 64, 10
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def _batches(batch, n_in, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, n_in)), rng.integers(0, N_CLASSES, size=batch)) for _ in range(n)]


def _torch_step(net, optimizer, lr):
    """A step of the same MLP in torch eager (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    mods = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
        mods.append(lin)
        if l < len(net.weights) - 1:
            mods.append(torch.nn.ReLU() if net.activation.name == "relu" else torch.nn.Tanh())
    model = torch.nn.Sequential(*mods)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(X, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
    return step, torch


def candidates(depth, width, batch, optimizer, with_probe=True):
    """{name: (fn, arguments cycled through)} for one configuration."""
    activation, init, lr = STUDY[optimizer]
    data = _batches(batch, width if width != 64 else N_IN)
    net = MLP(data[0][0].shape[1], [width] * depth, N_CLASSES, activation=activation, init=init, seed=0)
    opt = optimizers.get(optimizer, lr=lr)
    ref = ReferenceMLP(net.weights, net.biases, activation, optimizer, lr)
    probe_net = MLP(data[0][0].shape[1], [width] * depth, N_CLASSES, activation=activation, init=init, seed=0)

    def nncore_step(X, y):
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
    out = {"nncore": (nncore_step, data), "reference": (ref.step, data)}
    if with_probe:
        out["probe"] = (probe_net.probe, data)
    made = _torch_step(net, optimizer, lr)
    if made is not None:
        step, torch = made
        out["torch"] = (step, [(torch.tensor(X), torch.tensor(y)) for X, y in data])
    return out


def measure(cands, rounds, min_block_s=0.02, clock=time.perf_counter):
    """{name: seconds per call of the fastest block} over interleaved blocks, timed by ``clock``."""
    names = list(cands)
    sizes = {}
    for name in names:  # calls per block: about min_block_s each
        fn, args = cands[name]
        for a in args[:2]:
            fn(*a)
        t0 = clock()
        fn(*args[0])
        sizes[name] = max(3, int(min_block_s / max(clock() - t0, 1e-6)))
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, args = cands[name]
            fn(*args[-1])
            n = sizes[name]
            t0 = clock()
            for i in range(n):
                fn(*args[i % len(args)])
            times[name].append((clock() - t0) / n)
    return {name: min(ts) for name, ts in times.items()}


def _torch_threads(n):
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    results = {"machine": platform.processor() or platform.machine(), "numpy": np.__version__,
               "study": [], "large": []}
    print("study shapes: width 64, batch 64, float64, 1 thread (ms of CPU time per call, best block)")
    print(f"{'depth':>5} {'optimizer':>9} {'nncore':>8} {'ref':>8} {'torch':>8} {'probe':>8} "
          f"{'/ref':>6} {'/torch':>7} {'probe/step':>10}")
    failures = []
    with threadpool_limits(1):
        _torch_threads(1)
        for depth in STUDY_DEPTHS:
            for optimizer in STUDY:
                t = measure(candidates(depth, 64, 64, optimizer), args.rounds, clock=time.thread_time)
                row = {"depth": depth, "optimizer": optimizer, **{k: v * 1e3 for k, v in t.items()}}
                row["vs_reference"] = t["nncore"] / t["reference"]
                row["vs_torch"] = t["nncore"] / t["torch"] if "torch" in t else None
                row["probe_vs_step"] = t["probe"] / t["nncore"]
                results["study"].append(row)
                torch_ms = f"{row['torch']:8.3f}" if "torch" in row else f"{'-':>8}"
                vs_torch = f"{row['vs_torch']:7.2f}" if row["vs_torch"] else f"{'-':>7}"
                print(f"{depth:>5} {optimizer:>9} {row['nncore']:8.3f} {row['reference']:8.3f} {torch_ms} "
                      f"{row['probe']:8.3f} {row['vs_reference']:6.2f} {vs_torch} {row['probe_vs_step']:10.2f}")
                for key, target in (("vs_reference", "reference"), ("vs_torch", "torch"), ("probe_vs_step", "probe")):
                    if row[key] is not None and row[key] > TARGETS[target]:
                        failures.append(f"depth {depth} {optimizer}: {key} {row[key]:.2f} > {TARGETS[target]}")
    print("\n(depth 20, width 256, batch 128), float64, no target (ms per step, best block)")
    print(f"{'threads':>7} {'optimizer':>9} {'nncore':>8} {'ref':>8} {'torch':>8} {'/ref':>6} {'/torch':>7}")
    for threads in (1, 2):
        with threadpool_limits(threads):
            _torch_threads(threads)
            for optimizer in STUDY:
                t = measure(candidates(20, 256, 128, optimizer, with_probe=False), max(5, args.rounds // 2))
                row = {"threads": threads, "optimizer": optimizer, **{k: v * 1e3 for k, v in t.items()}}
                results["large"].append(row)
                torch_ms = f"{row['torch']:8.3f}" if "torch" in row else f"{'-':>8}"
                vs_torch = f"{t['nncore'] / t['torch']:7.2f}" if "torch" in t else f"{'-':>7}"
                print(f"{threads:>7} {optimizer:>9} {row['nncore']:8.3f} {row['reference']:8.3f} {torch_ms} "
                      f"{t['nncore'] / t['reference']:6.2f} {vs_torch}")
    print("\ntargets (study shapes): step <= 1.1x reference, <= 0.8x torch, probe <= 1.5x step: "
          + ("all met" if not failures else "missed: " + "; ".join(failures)))
    results["targets"], results["missed"] = TARGETS, failures
    args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
