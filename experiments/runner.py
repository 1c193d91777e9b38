"""One job: build the dataset and network from the config, train, probe, and record.

The local record (resolved config, Parquet histories, status) is written in the
job's output directory first; then everything goes to MLflow in batches.
"""
import gc
import json
import math
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from nncore import MLP, RNN, optimizers, probes, train
from nncore.probes_recurrent import time_layers
from nncore.training import n_steps

from . import datasets, liveness, record, sync, tracking
from .config import (SAME_INIT, activation_params, arch_kwargs, arch_label, config_hash, is_recurrent,
                     optimizer_kwargs, run_name, seq_len, validate)
from .diagnose import diagnose_job
from .diagnose_time import diagnose_recurrent_job

# Set by the launcher process (experiments/train.py) for the jobs of a sweep.
ENV_EXPERIMENT_ID = "GRADPATH_EXPERIMENT_ID"
ENV_PARENT_RUN = "GRADPATH_PARENT_RUN_ID"
ENV_SWEEP = "GRADPATH_SWEEP_ID"
ENV_SKIP_FILE = "GRADPATH_SKIP_FILE"
ENV_PROGRESS_DIR = "GRADPATH_PROGRESS_DIR"


def freeze_imports():
    """Import MLflow's client and sqlite store, then exempt every object alive now (theirs, Hydra's,
    pandas': about 300,000) from the cyclic garbage collector with ``gc.freeze``.

    They are never garbage, yet every full collection traverses them: one takes 0.15 s, and a
    loky worker (Hydra's joblib launcher) runs one after each job when psutil is absent; the
    final collection at a process's exit is another. The collector is paused during the import,
    which allocates them. Call it once per process, before the first job (it is a no-op after).
    """
    if gc.get_freeze_count():
        return
    gc.disable()
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()


def histogram_steps(total, log_every, snapshots):
    """Step 0, ``snapshots`` logged steps spread between, and the last step."""
    steps = {0, total}
    for k in range(1, snapshots + 1):
        s = int(round(total * k / (snapshots + 1) / log_every)) * log_every
        if 0 < s < total:
            steps.add(s)
    return sorted(steps)


@dataclass
class Recorder:
    """Training callback: keeps the per-layer history, histograms and scalars of one run.

    It keeps NumPy arrays per probe and builds each table once at the end: a DataFrame per
    statistic and probe cost more than the probes themselves (0.7 s of a 4.7 s depth-50 job).
    A recurrent net's statistics are (layers, T) arrays: their rows get layer = k * 100000 + t
    (experiments.record). Scalars that a run does not measure are left out: the accuracies of a
    regression (NaN), and the probe batch's gradient norm of a net whose probe does not give it."""
    data: object
    n_layers: int
    layer_rows: list = field(default_factory=list)     # (step, stat, values over layers 1..L or (k, t))
    hist_rows: list = field(default_factory=list)      # (step, kind, layer, counts, edges)
    scalar_rows: list = field(default_factory=list)    # (step, name, value, timestamp)

    def __call__(self, probe):
        net, step = probe.net, probe.step
        stats = probe.stats
        self.layer_rows.extend((step, stat, np.asarray(values, dtype=np.float64)) for stat, values in stats.items())
        # The probe batch is a fixed subset of the training set: its loss comes free with the probe.
        loss_train, acc_train = probe.probe_loss, probe.probe_accuracy
        loss_val, acc_val = net.evaluate(self.data.X_val, self.data.y_val)
        probe_norm = (math.sqrt(float(np.sum(stats["grad_norm"] ** 2) + np.sum(stats["bias_grad_norm"] ** 2)))
                      if "bias_grad_norm" in stats else getattr(net, "probe_grad_norm", None))
        scalars = dict(zip(record.SCALARS, (loss_train, loss_val, acc_train, acc_val, probe_norm)))
        if probe_norm is None:
            del scalars[record.GRAD_NORM_PROBE_BATCH]
        if self.data.task == "regression":
            del scalars[record.ACC_TRAIN], scalars[record.ACC_VAL]
        now = int(time.time() * 1000)
        self.scalar_rows.extend((step, name, float(v), now) for name, v in scalars.items())
        for kind, per_layer in (probe.histograms or {}).items():
            self.hist_rows.extend((step, kind, layer, counts, edges)
                                  for layer, (counts, edges) in enumerate(per_layer, start=1))
        jac = probe.jacobian
        if jac is not None:
            self.scalar_rows.extend((step, record.JACOBIAN_SCALARS[name], float(v), now) for name, v in jac.stats.items())
            self.layer_rows.append((step, record.LAYER_JACOBIAN_STAT, np.asarray(jac.layer_sv_mean, dtype=np.float64)))
            self.hist_rows.append((step, record.JACOBIAN_HISTOGRAM, self.n_layers - 1, *jac.histogram))

    def layer_stats(self):
        rows = self.layer_rows
        sizes = [r[2].size for r in rows]
        return _frame(record.LAYER_STATS_COLUMNS, {
            "step": np.repeat([r[0] for r in rows], sizes), "layer": _concat([_layer_codes(r[2]) for r in rows]),
            "stat": np.repeat([r[1] for r in rows], sizes), "value": _concat([r[2].ravel() for r in rows])})

    def add_train_grad_norms(self, grad_norms):
        """grad_norm/train at steps 1..n: update s's batch norm before clipping; timestamps interpolated
        between the probes' (the loop does not time its steps)."""
        if not grad_norms:
            return
        probed = sorted({(r[0], r[3]) for r in self.scalar_rows})
        steps = np.arange(1, len(grad_norms) + 1)
        stamps = np.interp(steps, [p[0] for p in probed], [p[1] for p in probed]) if probed else np.zeros(steps.size)
        self.scalar_rows.extend((int(s), record.GRAD_NORM_TRAIN, float(v), int(t))
                                for s, v, t in zip(steps, grad_norms, stamps))

    def histograms(self):
        rows = self.hist_rows
        sizes = [r[3].size for r in rows]
        return _frame(record.HISTOGRAM_COLUMNS, {
            "step": np.repeat([r[0] for r in rows], sizes), "layer": np.repeat([r[2] for r in rows], sizes),
            "kind": np.repeat([r[1] for r in rows], sizes), "bin": _concat([np.arange(n) for n in sizes]),
            "left": _concat([r[4][:-1] for r in rows]), "right": _concat([r[4][1:] for r in rows]),
            "count": _concat([r[3] for r in rows])})

    def scalars(self):
        return pd.DataFrame(self.scalar_rows, columns=list(record.SCALAR_COLUMNS)).astype(record.SCALAR_COLUMNS)


def _layer_codes(values):
    """The ``layer`` column of one statistic: 1..L for a per-layer array, k * 100000 + t for a
    recurrent net's (K, T) array (row-major, as ravel)."""
    if values.ndim == 2:
        return time_layers(*values.shape)
    return np.arange(1, values.size + 1)


def _concat(arrays):
    return np.concatenate(arrays) if arrays else np.array([])


def _frame(dtypes, columns):
    return pd.DataFrame({k: pd.Series(columns[k]).astype(v) for k, v in dtypes.items()})


def _skipped(cfg, cfg_hash):
    """Whether the pre-flight found this grid point FINISHED already (no skip file: nothing skipped)."""
    path = os.environ.get(ENV_SKIP_FILE)
    if not path:
        return False
    try:
        return cfg_hash in set(json.loads(Path(path).read_text()))
    except OSError:
        # A worker on another host (SLURM, a Ray cluster) does not see the launcher's temporary
        # directory: ask the store, so that a resumed sweep does not run a FINISHED point again.
        return _finished_in_store(cfg, cfg_hash)


def _finished_in_store(cfg, cfg_hash):
    exp_id = os.environ.get(ENV_EXPERIMENT_ID)
    if not exp_id:
        return False
    try:
        client = tracking.client(record.resolve_uri(cfg.tracking.uri))
        found = tracking.retry(client.search_runs, [exp_id], max_results=1, filter_string=(
            f"tags.role = 'job' and tags.config_hash = '{cfg_hash}' and attributes.status = 'FINISHED'"))
    except Exception:  # noqa: BLE001 - store down: run the job; sync dedupes later
        return False
    return bool(found)


def _mark_progress(cfg_hash, outcome):
    """Marker for the launcher's progress bar; a worker on another host has no such directory."""
    progress = os.environ.get(ENV_PROGRESS_DIR)
    if progress:
        try:
            Path(progress, f"{cfg_hash}.{outcome}").touch()
        except OSError:
            pass


def build(cfg, data):
    if is_recurrent(cfg):
        return build_recurrent(cfg, data)
    net = MLP(data.n_features, [cfg.model.width] * cfg.model.depth, data.n_classes,
              activation=cfg.activation.name, init=cfg.init.name, loss=cfg.train.loss,
              dropout=cfg.model.dropout, dtype=cfg.train.dtype, seed=cfg.seed,
              activation_params=activation_params(cfg),
              init_params={"sigma_w": cfg.init.sigma_w, "gain": cfg.init.gain, "value": cfg.init.value},
              sigma_b=cfg.init.sigma_b, **arch_kwargs(cfg))
    opt = optimizers.get(cfg.optimizer.name, **optimizer_kwargs(cfg))
    return net, opt


def build_recurrent(cfg, data):
    """RNN(cell=model.cell) with H = model.width and model.depth stacked layers; recurrent_init "same"
    draws W_hh as init draws W_ih, and model.recurrent_gain is the gain of an orthogonal or identity W_hh."""
    m = cfg.model
    init_params = {"sigma_w": cfg.init.sigma_w, "gain": cfg.init.gain, "value": cfg.init.value}
    same = m.recurrent_init == SAME_INIT
    gated = m.cell != "rnn"
    net = RNN(data.n_features, m.width, data.n_classes, cell=m.cell,
              activation="tanh" if gated else cfg.activation.name, num_layers=m.depth,
              init=cfg.init.name, recurrent_init=None if same else m.recurrent_init,
              forget_bias=m.forget_bias if gated else 0.0, loss=cfg.train.loss, seed=cfg.seed,
              dtype=cfg.train.dtype, activation_params=None if gated else activation_params(cfg),
              init_params=init_params,
              recurrent_params=None if same else {**init_params, "gain": m.recurrent_gain},
              sigma_b=cfg.init.sigma_b)
    return net, optimizers.get(cfg.optimizer.name, **optimizer_kwargs(cfg))


def tags_for(cfg, cfg_hash, data=None):
    sizes = {"n_in": data.n_features, "n_out": data.n_classes} if data is not None else {}
    return {**sizes, "activation": cfg.activation.name, "init": cfg.init.name, "optimizer": cfg.optimizer.name,
            "depth": cfg.model.depth, "width": cfg.model.width, "dataset": cfg.data.name, "seed": cfg.seed,
            "config_hash": cfg_hash, "sweep": os.environ.get(ENV_SWEEP, ""), "role": "job",
            "study": cfg.study or "", "arch": arch_label(cfg), "norm": cfg.model.norm,
            "residual": cfg.model.residual, "residual_scale": cfg.model.residual_scale, "cell": cfg.model.cell,
            **({"seq_len": seq_len(cfg), "recurrent_init": cfg.model.recurrent_init} if is_recurrent(cfg) else {}),
            record.PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}", **git_commit_tag()}


def git_commit_tag():
    """{"mlflow.source.git.commit": sha} of the repository's checkout; {} outside a git checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(record.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": sha} if len(sha) == 40 else {}


def run_job(cfg, output_dir, overrides=()):
    """Train one configuration and record it; returns "ok", "diverged" or "skipped".

    The local record in ``output_dir`` is complete before MLflow is touched at the
    end; if the store is unreachable even after retries, the record stays marked
    unsynced for ``make sync`` and the job still succeeds.
    """
    validate(cfg)
    cfg_hash = config_hash(cfg)
    if _skipped(cfg, cfg_hash):
        _mark_progress(cfg_hash, "skipped")
        return "skipped"
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with liveness.hold(output_dir) as lock:  # held until the record is final: the job's proof of life
        return _record_job(cfg, cfg_hash, output_dir, overrides, lock)


def _record_job(cfg, cfg_hash, output_dir, overrides, lock):
    started = time.time()

    data = datasets.load(cfg.data, cfg.seed)
    net, opt = build(cfg, data)
    probe_n = min(cfg.train.probe_size, data.X_train.shape[0])
    total = n_steps(data.X_train.shape[0], min(cfg.train.batch_size, data.X_train.shape[0]), cfg.train.epochs)
    recorder = Recorder(data, net.n_layers)

    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (output_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    tags = {k: str(v) for k, v in tags_for(cfg, cfg_hash, data).items()}
    tags[record.PROCESS_LOCK_TAG] = str(lock)
    if os.environ.get(ENV_PARENT_RUN):
        tags["mlflow.parentRunId"] = os.environ[ENV_PARENT_RUN]
    status = {"config_hash": cfg_hash, "run_name": run_name(cfg), "status": "RUNNING", "synced": False,
              "tracking_uri": record.resolve_uri(cfg.tracking.uri), "experiment": cfg.tracking.experiment,
              "experiment_id": os.environ.get(ENV_EXPERIMENT_ID), "tags": tags, "run_id": None}
    record.write_status(output_dir, status)
    sync.open_run(output_dir, status)
    try:
        t_train = time.time()
        result = train(net, opt, data.X_train, data.y_train, epochs=cfg.train.epochs,
                       batch_size=cfg.train.batch_size, probe_X=data.X_train[:probe_n],
                       probe_y=data.y_train[:probe_n], log_every=cfg.train.log_every, callback=recorder,
                       histogram_steps=histogram_steps(total, cfg.train.log_every, cfg.train.histogram_snapshots),
                       histogram_bins=cfg.train.histogram_bins,
                       jacobian_inputs=0 if is_recurrent(cfg) else probes.JACOBIAN_INPUTS)
        train_seconds = time.time() - t_train
    except BaseException as exc:
        state = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        status.update(status=state, error=f"{type(exc).__name__}: {exc}")
        record.write_status(output_dir, status)
        sync.close_run(status, state)
        _mark_progress(cfg_hash, "failed")
        raise
    outcome = "diverged" if result.diverged else "ok"
    recorder.add_train_grad_norms(result.grad_norms)
    layer_stats, scalars = recorder.layer_stats(), recorder.scalars()
    layer_stats.to_parquet(output_dir / record.LAYER_STATS_FILE, index=False)
    recorder.histograms().to_parquet(output_dir / record.HISTOGRAMS_FILE, index=False)
    scalars.to_parquet(output_dir / record.SCALARS_FILE, index=False)
    # outcome (ok/diverged) is kept for compatibility; trainability refines it (trained/stalled/diverged)
    if is_recurrent(cfg):
        verdicts = diagnose_recurrent_job(net, layer_stats, scalars, data, result, output_dir)
    else:
        verdicts = diagnose_job(cfg, net, layer_stats, scalars, data, result, total, output_dir)
    if cfg.train.clip_norm is not None and result.steps:
        status[record.CLIPPED_FRACTION] = result.clipped_fraction
    status.update(status="FINISHED", outcome=outcome, **verdicts, steps=result.steps,
                  diverged_step=result.diverged_step, train_seconds=round(train_seconds, 3))
    record.write_status(output_dir, status)
    t_log = time.time()
    try:
        synced = sync.upload(output_dir)
    except KeyboardInterrupt:  # Ctrl-C while uploading: close the partial run; the record stays for `make sync`
        sync.close_run(record.read_status(output_dir), "KILLED")
        _mark_progress(cfg_hash, "failed")
        raise
    if synced:
        status = record.read_status(output_dir)
        status.update(log_seconds=round(time.time() - t_log, 3), total_seconds=round(time.time() - started, 3))
        record.write_status(output_dir, status)
    _mark_progress(cfg_hash, outcome)
    return outcome

