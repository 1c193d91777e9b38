"""Pre-flight for runs and sweeps, in the launcher process before Hydra starts any job.

It expands the sweep exactly as Hydra's basic sweeper will, composes and validates
every job's config (so a bad value fails before any run exists), creates the
experiment once (no creation race between workers), marks runs a killed sweep
left RUNNING, finds the grid points already FINISHED (skipped unless forced),
and opens the sweep's parent run.
"""
import functools
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nncore import training

from . import liveness, record, tracking
from .config import ConfigError, config_hash, register, validate

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
FLAGS_WITH_VALUE = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir",
                    "--experimental-rerun", "-p", "--package"}


class PreflightError(Exception):
    """One line that names the problem; the command exits non-zero and no run is created."""


def one_line(exc):
    """A Hydra/OmegaConf error chain as one line (they span several)."""
    parts = []
    while exc is not None:
        text = " ".join(str(exc).split())
        for noise in (" Config search path:", " See https://"):
            text = text.split(noise)[0]
        if text and "$VALUE" not in text and not any(text in p for p in parts):
            parts.append(text)
        exc = exc.__cause__ or exc.__context__
    return ": ".join(parts) or "invalid configuration"


def split_argv(argv):
    """(overrides, flags) of a Hydra command line."""
    overrides, flags, skip = [], [], False
    for arg in argv:
        if skip:
            flags.append(arg)
            skip = False
        elif arg.startswith("-"):
            flags.append(arg)
            skip = arg in FLAGS_WITH_VALUE
        else:
            overrides.append(arg)
    return overrides, flags


@dataclass
class Plan:
    jobs: list                    # [(overrides, cfg, hash)]
    uri: str = ""
    experiment_id: str = ""
    done: set = field(default_factory=set)
    sweep_id: str = ""
    parent_run_id: str = ""
    launched: str = ""            # the parent's launched_ms tag for this launch

    @property
    def to_run(self):
        return [j for j in self.jobs if j[2] not in self.done]


def expand(overrides, multirun):
    """The override lists of every job, in Hydra's order."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    register()
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # noqa: BLE001 - hydra's parse errors have several types
        raise PreflightError(one_line(exc)) from None
    if not multirun:
        sweeps = [o for o in parsed if o.is_sweep_override()]
        if sweeps:
            raise PreflightError(f"override {sweeps[0].input_line!r} is a sweep: add -m (--multirun)")
        return [list(overrides)]
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            base = compose("config", overrides=plain, return_hydra_config=True)
        except Exception as exc:  # noqa: BLE001
            message = one_line(exc)
            if "hydra/launcher/" in message and ("ray" in message or "submitit" in message):
                message += " (the launcher's plugin is not installed: pip install -e '.[slurm]' or -e '.[ray]')"
            raise PreflightError(message) from None
    params = base.hydra.sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(overrides)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(lines), None)
    return [list(job) for batch in batches for job in batch]


def _split_value_overrides(overrides, parser):
    """(group-level overrides, [(key, typed value)]) or None when a full compose is needed.

    Composing is the slow part of a pre-flight (~0.2 s a job): jobs that differ only in
    plain values share one composed config per combination of group choices."""
    base, values = [], []
    for override in parser.parse_overrides(overrides):
        key = override.key_or_group
        is_group = "." not in key and (CONF_DIR / key).is_dir()
        if override.is_add() or override.is_delete() or override.is_force_add() or override.package is not None:
            return None
        if is_group or key.startswith("hydra"):
            base.append(override.input_line)
        else:
            values.append((key, override.value()))
    return base, values


def check_batchnorm_batches(cfg):
    """ConfigError when BatchNorm would meet a training batch of one example (nncore.training's
    check). The training-set size needs the data: loaded here, once per data config and seed, for
    every dataset but mnist, whose size would need its download (there, nncore.train refuses it
    when the job starts, before any work)."""
    if cfg.model.norm != "batch" or cfg.data.name == "mnist":
        return
    try:
        training.check_batchnorm_batches(cfg.model.norm, training_set_size(cfg.data, cfg.seed),
                                         cfg.train.batch_size, cfg.train.epochs)
    except ValueError as exc:
        raise ConfigError(f"train.batch_size: {exc} (data={cfg.data.name})") from None


def training_set_size(data_cfg, seed):
    """The number of training examples of ``data_cfg`` for ``seed`` (loads the data, once)."""
    from omegaconf import OmegaConf
    return _training_set_size(OmegaConf.to_yaml(data_cfg, resolve=True), seed)


@functools.lru_cache(maxsize=32)
def _training_set_size(data_yaml, seed):
    from omegaconf import OmegaConf

    from . import datasets
    return datasets.load(OmegaConf.create(data_yaml), seed).X_train.shape[0]


def compose_jobs(job_overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    register()
    parser = OverridesParser.create()
    bases = {}
    jobs = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in job_overrides:
            try:
                split = _split_value_overrides(overrides, parser)
                cfg = None
                if split is not None:
                    base, values = split
                    key = tuple(base)
                    if key not in bases:
                        bases[key] = compose("config", overrides=list(base))
                    try:
                        cfg = OmegaConf.create(bases[key])  # a typed copy; the struct flag carries over
                        for name, value in values:
                            OmegaConf.update(cfg, name, value, merge=True)
                    except Exception:  # noqa: BLE001 - let Hydra's own compose report it
                        cfg = None
                if cfg is None:
                    cfg = compose("config", overrides=overrides)
                validate(cfg)
                check_batchnorm_batches(cfg)
            except ConfigError as exc:
                raise PreflightError(f"{exc} (overrides: {' '.join(overrides) or 'none'})") from None
            except Exception as exc:  # noqa: BLE001
                raise PreflightError(one_line(exc)) from None
            jobs.append((overrides, cfg, config_hash(cfg)))
    return jobs


def finished_hashes(client, experiment_id, hashes):
    """config_hash of the FINISHED job runs among ``hashes``."""
    done, token = set(), None
    while True:
        page = tracking.retry(client.search_runs, [experiment_id],
                              filter_string="tags.role = 'job' and attributes.status = 'FINISHED'",
                              max_results=5000, page_token=token)
        done.update(r.data.tags.get("config_hash") for r in page)
        token = page.token
        if not token:
            break
    return done & set(hashes)


def process_gone(tag, host=None, lock=None):
    """Whether the job process named by a run's ``process`` tag (host:pid) has ended. On this host,
    a run with a ``process_lock`` tag (``lock``) has ended when its job lock is free
    (experiments.liveness: zombies and reused pids count as gone); an older run without it is asked
    by pid. A process on another host cannot be asked: it counts as gone only for runs without the
    tag (older runs)."""
    if not tag:
        return True
    run_host, _, pid = tag.rpartition(":")
    if run_host != (host or socket.gethostname()):
        return False
    if lock:
        return not liveness.held(lock)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def close_stale_runs(client, experiment_id, hashes, resume=False):
    """Mark KILLED the RUNNING job runs of this grid whose process has ended (a killed sweep leaves
    them behind). A run still being trained by a live process, say an identical command started
    earlier, is left alone. With ``resume`` (a multirun), runs of other hosts are closed too: the
    sweep re-runs their grid points."""
    stale = tracking.retry(client.search_runs, [experiment_id],
                           filter_string="tags.role = 'job' and attributes.status = 'RUNNING'", max_results=5000)
    closed = 0
    host = socket.gethostname()
    for run in stale:
        tag = run.data.tags.get(record.PROCESS_TAG, "")
        other_host = bool(tag) and tag.rpartition(":")[0] != host
        gone = process_gone(tag, host, run.data.tags.get(record.PROCESS_LOCK_TAG))
        if run.data.tags.get("config_hash") in hashes and (gone or (resume and other_host)):
            tracking.retry(client.set_terminated, run.info.run_id, "KILLED")
            closed += 1
    return closed


def parent_run(client, experiment_id, sweep_id, name, jobs, launched=None):
    """The sweep's parent run, reused when the same grid runs again; tagged with ``launched`` (ms)."""
    found = tracking.retry(client.search_runs, [experiment_id],
                           filter_string=f"tags.role = 'parent' and tags.sweep = '{sweep_id}'", max_results=1)
    launched = launched or str(int(time.time() * 1000))
    if found:
        run_id = found[0].info.run_id
        tracking.retry(client.update_run, run_id, status="RUNNING")
        tracking.retry(client.set_tag, run_id, record.LAUNCHED_TAG, launched)
        return run_id
    run = tracking.retry(client.create_run, experiment_id, run_name=f"sweep-{name}-{sweep_id}",
                         tags={"role": "parent", "sweep": sweep_id, "study": name,
                               "n_jobs": str(len(jobs)), record.LAUNCHED_TAG: launched})
    grid = [{"config_hash": h, "overrides": o} for o, _, h in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, record.GRID_FILE)
        path.write_text(json.dumps(grid, indent=1))
        tracking.retry(client.log_artifact, run.info.run_id, str(path))
    return run.info.run_id


def prepare(argv, force=False):
    """Validate everything and open the tracking store; returns the Plan. Raises PreflightError."""
    overrides, flags = split_argv(argv)
    multirun = "-m" in flags or "--multirun" in flags
    jobs = compose_jobs(expand(overrides, multirun))
    uris = {record.resolve_uri(cfg.tracking.uri) for _, cfg, _ in jobs}
    experiments = {cfg.tracking.experiment for _, cfg, _ in jobs}
    if len(uris) > 1 or len(experiments) > 1:
        raise PreflightError("tracking.uri and tracking.experiment cannot be swept")
    uri, experiment = uris.pop(), experiments.pop()
    plan = Plan(jobs=jobs, uri=uri)
    try:
        tracking.check_store(uri)
        client = tracking.client(uri)
        plan.experiment_id = tracking.get_or_create_experiment(client, uri, experiment)
        hashes = [h for _, _, h in jobs]
        close_stale_runs(client, plan.experiment_id, set(hashes), resume=multirun)
        if multirun:
            plan.done = set() if force else finished_hashes(client, plan.experiment_id, hashes)
            plan.sweep_id = hashlib.sha1(" ".join(sorted(hashes)).encode()).hexdigest()[:12]
            study = jobs[0][1].study or "sweep"
            plan.launched = str(int(time.time() * 1000))
            plan.parent_run_id = parent_run(client, plan.experiment_id, plan.sweep_id, study, jobs, plan.launched)
            tracking.describe_latest_sweep(client, plan.experiment_id, plan.sweep_id, plan.parent_run_id,
                                           f"sweep-{study}-{plan.sweep_id}")
    except tracking.StoreError as exc:
        raise PreflightError(str(exc)) from None
    except PreflightError:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/mlflow errors: report, don't trace
        raise PreflightError(f"tracking store {uri}: {one_line(exc)}") from None
    return plan


def finish_parent(plan, status):
    """Close the sweep's parent run as ``status``. With the store unreachable at the end, the closing
    is written to the sweep directory's parent.json for `make sync` (experiments.sync), with a
    one-line warning: the jobs' records are safe, and the launcher does not end in a traceback."""
    if not plan.parent_run_id:
        return
    try:
        client = tracking.client(plan.uri)
        tracking.retry(client.set_terminated, plan.parent_run_id, status)
    except Exception as exc:  # noqa: BLE001 - any store failure: leave it to make sync
        directory = Path(os.environ.get(record.ENV_SWEEP_DIR) or Path.cwd() / "multirun")
        directory.mkdir(parents=True, exist_ok=True)
        pending = {"tracking_uri": plan.uri, "run_id": plan.parent_run_id, "status": status,
                   record.LAUNCHED_TAG: plan.launched, "synced": False}
        record.write_json(directory / record.PARENT_FILE, pending)
        print(f"warning: could not close the sweep's parent run ({tracking.short(exc)}); "
              f"run `make sync` to close it ({directory / record.PARENT_FILE})", file=sys.stderr)


class Progress:
    """Runs done / total, elapsed and ETA, from marker files the jobs leave behind."""

    def __init__(self, directory, total, interval=1.0):
        from tqdm import tqdm
        self.directory = Path(directory)
        self.bar = tqdm(total=total, desc="runs", unit="run", file=sys.stderr, mininterval=interval,
                        dynamic_ncols=True)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def counts(self):
        names = [p.name for p in self.directory.iterdir()]
        return len(names), {k: sum(1 for n in names if n.endswith("." + k)) for k in ("ok", "diverged", "failed")}

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._refresh()

    def _refresh(self):
        done, kinds = self.counts()
        self.bar.set_postfix(kinds, refresh=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._refresh()
        self.bar.close()
