"""Time nncore training steps and probe passes; compare with PyTorch eager when it is installed.

    python -m benchmarks.bench_step [--threads N] [--quick] [--breakdown] [--json PATH]

For each shape (depth, width, batch) in SHAPES and each dtype (float64, float32),
with tanh, xavier_uniform, cross_entropy, input dim = width, 10 classes and
synthetic Gaussian data, it measures

  step     one training step, probes off: ``net.loss_and_grads`` (forward and
           backward) + ``opt.step`` (Adam lr 1e-3, and SGD lr 1e-3);
  probe    one ``net.probe`` on a batch of the same size;
  gemm     the bare np.matmul calls of one step (same shapes, preallocated
           outputs): the floor that only removing non-GEMM work could reach;

and prints ms per step, GFLOP/s (GEMM flops of a step: forward 2*B*fan_in*fan_out
per layer, backward 2x that for dW and dX, no dX for layer 1), the fraction of this
machine's GEMM peak (best sustained GFLOP/s of a large square np.matmul in the same
dtype and thread count, measured in this run), "probe every 10 steps adds X%" =
probe / (10 * Adam step), and, when torch is importable, the same MLP in PyTorch
eager (torch.optim.Adam / SGD, torch.set_num_threads(N)) and the ratio
nncore time / torch time (<= 1.0: nncore as fast or faster).

Timing: warm-up, then the median over repeats of the mean of many calls
(time.perf_counter). All NumPy measurements run before torch is imported so that
the two thread pools never compete. Results also go to benchmarks/results.json.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SHAPES = [(20, 256, 128), (50, 64, 64)]   # (depth = hidden layers, width, batch)
DTYPES = ["float64", "float32"]
N_CLASSES = 10
LR = 1e-3
N_BATCHES = 8            # distinct synthetic batches, cycled through
PROBE_EVERY = 10
TARGETS = {
    "ratio_vs_torch_max": 1.0,            # at every shape, Adam step
    "peak_fraction_min": 0.50,            # at (20, 256, 128) float32, Adam step
    "peak_fraction_shape": (20, 256, 128, "float32"),
    "probe_overhead_max": 0.10,           # probe every 10 steps
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


# ----------------------------------------------------------------------- setup
def parse_args(argv=None):
    default_threads = os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=int(default_threads),
                   help="BLAS / torch threads (default: $OMP_NUM_THREADS or os.cpu_count(); now %(default)s)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement (median reported)")
    p.add_argument("--target-s", type=float, default=0.25, help="seconds per timed repeat")
    p.add_argument("--peak-size", type=int, default=2048, help="n of the n x n matmul that measures the peak")
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (smoke test)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the phases of a step (check_inputs, forward, backward, optimizer, probe stats)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results (default: %(default)s)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.quick:
        args.repeats, args.target_s, args.peak_size = 3, 0.08, 1024
    return args


def set_thread_env(n):
    """Fix the thread count of every BLAS / OpenMP runtime before any of them is loaded."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------- timing
def measure(fn, repeats, target_s, min_warmup=5, warmup_s=0.1):
    """Seconds per call of ``fn``: warm-up, then the median over ``repeats`` of the mean of many calls."""
    t0 = time.perf_counter()
    n = 0
    while n < min_warmup or time.perf_counter() - t0 < warmup_s:
        fn()
        n += 1
    per_call = (time.perf_counter() - t0) / n
    inner = max(3, int(target_s / per_call))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "calls_per_repeat": inner, "repeats": repeats, "samples_s": samples}


def step_flops(sizes, batch):
    """GEMM flops of one training step: forward 2*B*fi*fo per layer; backward dW for every layer and
    dX for every layer but the first, 2*B*fi*fo each."""
    flops = 0
    for l, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        gemm = 2 * batch * fi * fo
        flops += gemm + gemm + (gemm if l > 0 else 0)
    return flops


def measure_peak(np, dtype, n, repeats):
    """Best sustained GFLOP/s of an n x n np.matmul (outputs preallocated) in ``dtype``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)                                   # warm-up: thread pool, page faults
    np.matmul(a, b, out=c)
    t = time.perf_counter()
    np.matmul(a, b, out=c)
    one = time.perf_counter() - t
    calls = max(2, int(0.4 / max(one, 1e-6)))                # blocks of ~0.4 s
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        best = max(best, calls * 2.0 * n ** 3 / (time.perf_counter() - t))
    return best / 1e9


# -------------------------------------------------------------------- problems
def make_data(np, width, batch, dtype, seed=1234):
    rng = np.random.default_rng(seed)
    Xs = [rng.standard_normal((batch, width)).astype(dtype) for _ in range(N_BATCHES)]
    ys = [rng.integers(0, N_CLASSES, size=batch).astype(np.int64) for _ in range(N_BATCHES)]
    return Xs, ys


def make_net(depth, width, dtype):
    from nncore import MLP
    return MLP(width, [width] * depth, N_CLASSES, activation="tanh", init="xavier_uniform",
               loss="cross_entropy", dtype=dtype, seed=0)


def bench_nncore(np, depth, width, batch, dtype, args):
    from nncore import optimizers
    Xs, ys = make_data(np, width, batch, dtype)
    out = {}
    for opt_name in ("adam", "sgd"):
        net = make_net(depth, width, dtype)
        opt = optimizers.get(opt_name, lr=LR)
        state = {"i": 0}

        def step():
            i = state["i"] = (state["i"] + 1) % N_BATCHES
            _, grads = net.loss_and_grads(Xs[i], ys[i])
            opt.step(net, grads)

        out[f"step_{opt_name}"] = measure(step, args.repeats, args.target_s)
        if opt_name == "adam":
            # probe on the trained net (as in training), batch of the same size
            out["probe"] = measure(lambda: net.probe(Xs[0], ys[0]), args.repeats, args.target_s)
            if args.breakdown:
                out["breakdown"] = breakdown(np, net, opt, Xs[0], ys[0], args)
    out["gemm_only"] = measure(gemm_only_step(np, net.sizes, batch, dtype), args.repeats, args.target_s)
    return out


def gemm_only_step(np, sizes, batch, dtype):
    """The np.matmul calls of one training step and nothing else (preallocated outputs)."""
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((fi, fo)).astype(dtype) for fi, fo in zip(sizes[:-1], sizes[1:])]
    acts = [rng.standard_normal((batch, n)).astype(dtype) for n in sizes]
    deltas = [np.empty((batch, n), dtype) for n in sizes]
    gWs = [np.empty_like(W) for W in Ws]
    L = len(Ws)

    def run():
        for l in range(L):
            np.matmul(acts[l], Ws[l], out=acts[l + 1])
        deltas[L][...] = 1e-3
        for l in range(L - 1, -1, -1):
            np.matmul(acts[l].T, deltas[l + 1], out=gWs[l])
            if l:
                np.matmul(deltas[l + 1], Ws[l].T, out=deltas[l])
    return run


def breakdown(np, net, opt, X, y, args):
    """Time the phases of one step separately (ms): where the step time goes."""
    from nncore import probes
    ws = net._workspace(X.shape[0], "train")
    gw, gb = net._grad_buffers("train")
    _, grads = net.loss_and_grads(X, y)
    pws = net._workspace(X.shape[0], "probe")
    pgw, pgb = net._grad_buffers("probe")
    net._probe_pass(X, y)
    rep, tgt = max(3, args.repeats // 2), args.target_s / 2
    phases = {
        "check_inputs": lambda: net.check_inputs(X, y),
        "forward": lambda: net._forward(X, ws, True),
        "backward (loss + deltas + grads)": lambda: net._backward(X, y, ws, gw, gb),
        "optimizer.step": lambda: opt.step(net, grads),
        "probe: layer_stats only": lambda: probes.layer_stats(net, pws, pgw, pgb),
    }
    return {k: measure(f, rep, tgt)["median_s"] * 1e3 for k, f in phases.items()}


def bench_torch(torch, np, depth, width, batch, dtype, args):
    nn = torch.nn
    tdtype = getattr(torch, dtype)
    Xs, ys = make_data(np, width, batch, dtype)
    tX = [torch.from_numpy(X) for X in Xs]
    ty = [torch.from_numpy(y) for y in ys]
    ref = make_net(depth, width, dtype)                      # same initial weights as nncore
    out = {}
    for opt_name in ("adam", "sgd"):
        layers = []
        for l, W in enumerate(ref.weights):
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=tdtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.zero_()
            layers.append(lin)
            if l < len(ref.weights) - 1:
                layers.append(nn.Tanh())
        model = nn.Sequential(*layers)
        opt = (torch.optim.Adam if opt_name == "adam" else torch.optim.SGD)(model.parameters(), lr=LR)
        loss_fn = nn.CrossEntropyLoss()
        if opt_name == "adam":                               # sanity: same loss as nncore at step 0
            with torch.no_grad():
                out["loss0_torch"] = float(loss_fn(model(tX[0]), ty[0]))
            out["loss0_nncore"] = float(ref.loss(Xs[0], ys[0]))
        state = {"i": 0}

        def step():
            i = state["i"] = (state["i"] + 1) % N_BATCHES
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(tX[i]), ty[i])
            loss.backward()
            opt.step()

        out[f"step_{opt_name}"] = measure(step, args.repeats, args.target_s)
    return out


# ---------------------------------------------------------------------- output
def fmt_table(headers, rows, aligns=None):
    cols = list(zip(*([headers] + rows))) if rows else [[h] for h in headers]
    widths = [max(len(str(c)) for c in col) for col in cols]
    aligns = aligns or ["<"] + [">"] * (len(headers) - 1)
    line = lambda cells: "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, aligns, widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def main(argv=None):
    args = parse_args(argv)
    set_thread_env(args.threads)
    t_start = time.perf_counter()

    import numpy as np
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        _limits = threadpool_limits(limits=args.threads)  # noqa: F841 (kept for the whole run)
        blas_info = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
                     for d in threadpool_info()]
    except ImportError:  # pragma: no cover - threadpoolctl is a project dependency
        blas_info = []

    print(f"nncore step benchmark: {cpu_name()}, {os.cpu_count()} CPUs, threads={args.threads}, "
          f"numpy {np.__version__}, python {platform.python_version()}")
    for d in blas_info:
        print(f"  BLAS: {d['internal_api']} {d['version']} ({d['architecture']}), threads={d['num_threads']}")

    results = {"machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "threads": args.threads,
                           "python": platform.python_version(), "numpy": np.__version__, "blas": blas_info},
               "settings": {"repeats": args.repeats, "target_s": args.target_s, "peak_size": args.peak_size,
                            "lr": LR, "n_classes": N_CLASSES, "activation": "tanh", "init": "xavier_uniform",
                            "loss": "cross_entropy", "probe_every": PROBE_EVERY},
               "targets": {k: list(v) if isinstance(v, tuple) else v for k, v in TARGETS.items()},
               "peak_gflops": {}, "runs": []}

    # 1. GEMM peak per dtype
    for dtype in DTYPES:
        results["peak_gflops"][dtype] = measure_peak(np, np.dtype(dtype), args.peak_size, max(3, args.repeats // 2))
    print("  GEMM peak (%dx%d np.matmul): " % (args.peak_size, args.peak_size)
          + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in results["peak_gflops"].items()))

    # 2. nncore (all NumPy work before torch is imported)
    with np.errstate(all="ignore"):
        for depth, width, batch in SHAPES:
            for dtype in DTYPES:
                sizes = [width] + [width] * depth + [N_CLASSES]
                run = {"depth": depth, "width": width, "batch": batch, "dtype": dtype,
                       "gflop_per_step": step_flops(sizes, batch) / 1e9,
                       "nncore": bench_nncore(np, depth, width, batch, dtype, args)}
                results["runs"].append(run)
                print(f"  measured nncore  depth={depth:<3d} width={width:<4d} batch={batch:<4d} {dtype}", flush=True)

    # 3. torch
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        results["machine"]["torch"] = torch.__version__
        results["machine"]["torch_threads"] = torch.get_num_threads()
        for run in results["runs"]:
            run["torch"] = bench_torch(torch, np, run["depth"], run["width"], run["batch"], run["dtype"], args)
            print(f"  measured torch   depth={run['depth']:<3d} width={run['width']:<4d} batch={run['batch']:<4d} "
                  f"{run['dtype']}", flush=True)
    else:
        results["machine"]["torch"] = None

    # 4. derived numbers and targets
    checks = []
    for run in results["runs"]:
        peak = results["peak_gflops"][run["dtype"]]
        shape = (run["depth"], run["width"], run["batch"])
        d = run["derived"] = {}
        for opt_name in ("adam", "sgd"):
            t = run["nncore"][f"step_{opt_name}"]["median_s"]
            d[f"{opt_name}_ms"] = t * 1e3
            d[f"{opt_name}_gflops"] = run["gflop_per_step"] / t
            d[f"{opt_name}_peak_frac"] = d[f"{opt_name}_gflops"] / peak
            if "torch" in run:
                tt = run["torch"][f"step_{opt_name}"]["median_s"]
                d[f"torch_{opt_name}_ms"] = tt * 1e3
                d[f"torch_{opt_name}_gflops"] = run["gflop_per_step"] / tt
                d[f"{opt_name}_ratio"] = t / tt
        tg = run["nncore"]["gemm_only"]["median_s"]
        d["gemm_only_ms"] = tg * 1e3
        d["gemm_only_gflops"] = run["gflop_per_step"] / tg
        d["gemm_only_peak_frac"] = d["gemm_only_gflops"] / peak
        d["probe_ms"] = run["nncore"]["probe"]["median_s"] * 1e3
        d["probe_overhead"] = d["probe_ms"] / (PROBE_EVERY * d["adam_ms"])
        label = f"({run['depth']},{run['width']},{run['batch']}) {run['dtype']}"
        if "adam_ratio" in d:
            checks.append((f"ratio <= 1.0 vs torch (Adam)  {label}", f"{d['adam_ratio']:.2f}",
                           d["adam_ratio"] <= TARGETS["ratio_vs_torch_max"]))
        if shape + (run["dtype"],) == TARGETS["peak_fraction_shape"]:
            checks.append((f">= 50% of GEMM peak (Adam)    {label}", f"{100 * d['adam_peak_frac']:.1f}%",
                           d["adam_peak_frac"] >= TARGETS["peak_fraction_min"]))
        checks.append((f"probe every 10 adds <= 10%    {label}", f"{100 * d['probe_overhead']:.1f}%",
                       d["probe_overhead"] <= TARGETS["probe_overhead_max"]))
    if torch is None:
        checks.append(("ratio <= 1.0 vs torch", "torch not installed", None))
    results["checks"] = [{"target": c, "value": v, "met": ok} for c, v, ok in checks]

    # 5. print
    has_torch = torch is not None
    headers = ["depth", "width", "batch", "dtype", "opt", "ms/step", "GFLOP/s", "%peak"]
    if has_torch:
        headers += ["torch ms", "torch GF/s", "np/torch"]
    rows = []
    for run in results["runs"]:
        d = run["derived"]
        for opt_name in ("adam", "sgd"):
            row = [run["depth"], run["width"], run["batch"], run["dtype"], opt_name,
                   f"{d[f'{opt_name}_ms']:.3f}", f"{d[f'{opt_name}_gflops']:.1f}",
                   f"{100 * d[f'{opt_name}_peak_frac']:.1f}%"]
            if has_torch:
                row += [f"{d[f'torch_{opt_name}_ms']:.3f}", f"{d[f'torch_{opt_name}_gflops']:.1f}",
                        f"{d[f'{opt_name}_ratio']:.2f}"]
            rows.append(row)
    print("\nTraining step (forward + backward + optimizer step, probes off), median of "
          f"{args.repeats} repeats; GFLOP/s counts GEMM flops only")
    print(fmt_table(headers, rows, ["<", ">", ">", "<", "<"] + [">"] * (len(headers) - 5)))

    rows = []
    for run in results["runs"]:
        d = run["derived"]
        rows.append([run["depth"], run["width"], run["batch"], run["dtype"], f"{run['gflop_per_step']:.3f}",
                     f"{d['gemm_only_ms']:.3f}", f"{d['gemm_only_gflops']:.1f}", f"{100 * d['gemm_only_peak_frac']:.1f}%",
                     f"{100 * d['gemm_only_ms'] / d['adam_ms']:.0f}%",
                     f"{d['probe_ms']:.3f}", f"{100 * d['probe_overhead']:.1f}%"])
    print("\nGEMM floor (the step's np.matmul calls alone) and probe cost "
          f"(probe every {PROBE_EVERY} steps adds = probe / ({PROBE_EVERY} x Adam step))")
    print(fmt_table(["depth", "width", "batch", "dtype", "GFLOP/step", "gemm ms", "gemm GF/s", "gemm %peak",
                     "gemm/adam step", "probe ms", "probe/10 adds"],
                    rows, ["<", ">", ">", "<"] + [">"] * 7))

    if args.breakdown:
        names = list(results["runs"][0]["nncore"]["breakdown"])
        rows = [[r["depth"], r["width"], r["batch"], r["dtype"]] +
                [f"{r['nncore']['breakdown'][k]:.3f}" for k in names] for r in results["runs"]]
        print("\nPhases of one nncore step (ms, each timed on its own)")
        print(fmt_table(["depth", "width", "batch", "dtype"] + names, rows, ["<", ">", ">", "<"] + [">"] * len(names)))

    print("\nTargets")
    for c, v, ok in checks:
        mark = "n/a " if ok is None else ("MET " if ok else "MISS")
        print(f"  [{mark}] {c}: {v}")
    for run in results["runs"]:
        if "torch" in run:
            l0n, l0t = run["torch"]["loss0_nncore"], run["torch"]["loss0_torch"]
            if not math.isclose(l0n, l0t, rel_tol=1e-3):
                print(f"  warning: step-0 loss differs nncore {l0n:.6f} vs torch {l0t:.6f} "
                      f"({run['depth']},{run['width']},{run['batch']}) {run['dtype']}")

    results["total_s"] = time.perf_counter() - t_start
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.json} ({results['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
