"""Upload local run records to MLflow: at the end of every job, and later for records a
store outage left unsynced.

    python -m experiments.sync [DIR ...]     # default: outputs/ and multirun/; make sync

A record is a job's output directory: config.yaml, overrides.yaml, the Parquet
histories and status.json. Uploading is idempotent: a record is uploaded into the
run it already names (status.json ``run_id``), metrics keep their recorded
timestamps, and a synced record is never uploaded again, so running sync twice
creates no duplicates.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from . import record as rec
from . import images, tracking
from .config import is_recurrent, logged_params
from .record import read_status, write_status


def _experiment_id(client, status):
    return status.get("experiment_id") or tracking.get_or_create_experiment(
        client, status["tracking_uri"], status["experiment"])


def open_run(record, status):
    """Create the run (RUNNING) at the start of a job; stay offline if the store is down."""
    try:
        client = tracking.client(status["tracking_uri"])
        exp_id = _experiment_id(client, status)
        run = tracking.retry(client.create_run, exp_id, run_name=status["run_name"], tags=status["tags"])
    except Exception as exc:  # noqa: BLE001 - any store failure: train anyway, sync later
        print(f"warning: tracking store unavailable at start ({tracking.short(exc)}); recording locally in {record}",
              file=sys.stderr)
        return None
    status.update(run_id=run.info.run_id, experiment_id=exp_id)
    write_status(record, status)
    return run.info.run_id


def close_run(status, state):
    if status.get("run_id"):
        try:
            tracking.retry(tracking.client(status["tracking_uri"]).set_terminated, status["run_id"], state, attempts=2)
        except Exception:  # noqa: BLE001 - the local record says what happened
            pass


def metrics_of(scalars, stats, cfg):
    """(metrics, tags) of the run from its local record's scalars and layer_stats tables and its
    resolved config (a dict): MLflow Metric entities (the scalars, the few per-layer series, the
    profiles and the filterable numbers of experiments.record) and RunTags."""
    from mlflow.entities import Metric, RunTag

    probed = scalars[scalars.name != rec.GRAD_NORM_TRAIN]
    stamp = dict(zip(probed.step, probed.timestamp))
    first_ts = int(min(stamp.values(), default=0))
    metrics = [Metric(n, float(v), int(t), int(s)) for s, n, v, t in
               scalars[["step", "name", "value", "timestamp"]].itertuples(index=False)]
    if is_recurrent(cfg):
        return recurrent_metrics_of(metrics, stats, cfg, stamp, first_ts)
    n_layers = int(stats.layer.max()) if len(stats) else 0
    layers = rec.series_layers(n_layers) if n_layers else []
    picked = stats[stats.stat.isin(rec.SERIES_STATS) & stats.layer.isin(layers)]
    series_skipped = 0
    for s, layer, stat, v in picked[["step", "layer", "stat", "value"]].itertuples(index=False):
        if math.isfinite(v) and v > 0:
            metrics.append(Metric(rec.series_key(stat, int(layer), n_layers), math.log10(v), int(stamp.get(s, 0)), int(s)))
        else:
            series_skipped += 1
    by_step = rec.steps_and_layers(stats[stats.step.isin({0, stats.step.max()})]) if len(stats) else {}
    tags = [RunTag(rec.SERIES_SKIPPED_TAG, str(series_skipped))]
    for profile, step in (("init", 0 if 0 in by_step else None), ("final", rec.final_probe_step(by_step))):
        skipped = 0
        if step is not None:
            for stat in rec.PROFILE_STATS:
                values, n_skipped = rec.profile_values(by_step[step], stat)
                skipped += n_skipped
                ts = int(stamp.get(step, first_ts))
                metrics += [Metric(rec.profile_key(profile, stat), v, ts, layer) for layer, v in values.items()]
        tags.append(RunTag(rec.skipped_tag(profile), str(skipped)))
    ratio = rec.log10_grad_ratio(by_step.get(0, {}).get("grad_norm", {}))
    if ratio is not None:
        metrics.append(Metric(rec.GRAD_RATIO_INIT, ratio, first_ts, 0))
    numbers = {"depth": cfg["model"]["depth"], "width": cfg["model"]["width"], "seed": cfg["seed"]}
    metrics += [Metric(name, float(numbers[name]), first_ts, 0) for name in rec.CONFIG_METRICS]
    # Key-major order: each batch then touches few keys, which MLflow's latest-metric upsert favours.
    metrics.sort(key=lambda m: (m.key, m.step))
    return metrics, tags


def recurrent_metrics_of(metrics, stats, cfg, stamp, first_ts):
    """metrics_of for a recurrent net: the profiles over time steps of its top stacked layer
    (step = t, record.RECURRENT_PROFILE_STATS) at step 0 and at the last probe, and the filterable
    numbers depth (stacked layers), width (H), seed and seq_len (T)."""
    from mlflow.entities import Metric, RunTag

    tags = []
    top = top_layer_over_time(stats[stats.step.isin({0, stats.step.max()})]) if len(stats) else None
    by_step = rec.steps_and_layers(top) if top is not None else {}
    for profile, step in (("init", 0 if 0 in by_step else None), ("final", rec.final_probe_step(by_step))):
        skipped = 0
        if step is not None:
            for stat in rec.RECURRENT_PROFILE_STATS:
                values, n_skipped = rec.profile_values(by_step[step], stat, rec.RECURRENT_PROFILE_STATS)
                skipped += n_skipped
                ts = int(stamp.get(step, first_ts))
                metrics += [Metric(rec.profile_key(profile, stat), v, ts, t) for t, v in values.items()]
        tags.append(RunTag(rec.skipped_tag(profile), str(skipped)))
    numbers = {"depth": cfg["model"]["depth"], "width": cfg["model"]["width"], "seed": cfg["seed"]}
    if top is not None:
        numbers["seq_len"] = int(top.layer.max())
    metrics += [Metric(name, float(value), first_ts, 0) for name, value in numbers.items()]
    metrics.sort(key=lambda m: (m.key, m.step))
    return metrics, tags


def finished_run(client, status):
    """run_id of a FINISHED job run of the record's grid point (same config_hash) in the store, or None."""
    exp_id = _experiment_id(client, status)
    found = tracking.retry(client.search_runs, [exp_id], max_results=1, filter_string=(
        f"tags.role = 'job' and tags.config_hash = '{status['config_hash']}' and attributes.status = 'FINISHED'"))
    return found[0].info.run_id if found else None


def _run_state(client, run_id):
    """Status of run ``run_id`` in the store; None without a run_id or when the store has no such run."""
    if not run_id:
        return None
    try:
        return tracking.retry(client.get_run, run_id).info.status
    except Exception as exc:  # noqa: BLE001
        if tracking.is_transient(exc):
            raise
        return None


def upload(record, dedupe=False):
    """Log a finished local record to MLflow; True when synced. Never raises for store errors.

    With ``dedupe`` (``make sync``), a record whose grid point already has a FINISHED run (a
    killed sweep that was resumed, say) is marked synced, ``superseded_by`` that run, and not
    uploaded again: same config_hash, same numbers, and no duplicate.
    """
    record = Path(record)
    status = read_status(record)
    if status.get("synced"):
        return True
    if status.get("status") != "FINISHED":
        return False
    try:
        from mlflow.entities import Metric, Param, RunTag
        client = tracking.client(status["tracking_uri"])
        if dedupe:
            own = _run_state(client, status.get("run_id"))
            other = None if own == "FINISHED" else finished_run(client, status)
            if own == "FINISHED" or other is not None:
                if own == "RUNNING":
                    close_run(status, "KILLED")  # the record's own run, left partial by the outage
                status.update(synced=True, **({"superseded_by": other} if other else {}))
                write_status(record, status)
                return True
        if not status.get("run_id"):
            exp_id = _experiment_id(client, status)
            run = tracking.retry(client.create_run, exp_id, run_name=status["run_name"], tags=status["tags"])
            status.update(run_id=run.info.run_id, experiment_id=exp_id)
            write_status(record, status)
        run_id = status["run_id"]
        cfg = yaml.safe_load((record / "config.yaml").read_text())
        stats = pd.read_parquet(record / rec.LAYER_STATS_FILE)
        params = [Param(k, str(v)) for k, v in logged_params(cfg).items()]
        for i in range(0, len(params), tracking.PARAM_BATCH):
            tracking.retry(client.log_batch, run_id, params=params[i:i + tracking.PARAM_BATCH])
        metrics, tags = metrics_of(pd.read_parquet(record / rec.SCALARS_FILE), stats, cfg)
        last = int(status.get("steps") or 0)
        if status.get("diverged_step") is not None:
            metrics.append(Metric(rec.DIVERGED_STEP, float(status["diverged_step"]), _last_ts(metrics), last))
        if status.get("train_seconds") is not None:
            metrics.append(Metric(rec.TRAIN_SECONDS, float(status["train_seconds"]), _last_ts(metrics), last))
        if status.get(rec.CLIPPED_FRACTION) is not None:
            metrics.append(Metric(rec.CLIPPED_FRACTION, float(status[rec.CLIPPED_FRACTION]), _last_ts(metrics), last))
        for i in range(0, len(metrics), tracking.BATCH):
            tracking.retry(client.log_batch, run_id, metrics=metrics[i:i + tracking.BATCH])
        for name in rec.ARTIFACTS:
            if (record / name).exists():
                tracking.retry(client.log_artifact, run_id, str(record / name))
        if not status.get("images_logged"):  # an upload cut short after them must not log them twice
            t_images = time.perf_counter()
            images.log_images(client, run_id, images_stats(stats, cfg), status["run_name"], retry=tracking.retry)
            status.update(images_logged=True, images_seconds=round(time.perf_counter() - t_images, 3))
            write_status(record, status)
        tracking.retry(client.log_batch, run_id, tags=[*tags, *[RunTag(name, str(status[name]))
                                                                for name in rec.RESULT_TAGS if name in status]])
        tracking.retry(client.set_terminated, run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - keep the record; `make sync` retries later
        print(f"warning: could not sync {record} ({tracking.short(exc)}); it stays unsynced: run `make sync`",
              file=sys.stderr)
        return False
    status["synced"] = True
    write_status(record, status)
    return True


def top_layer_over_time(stats):
    """A recurrent run's layer_stats of its top stacked layer, with the time step t as the layer
    (layer := t), in the columns of ``stats``."""
    timed = rec.time_axis(stats)
    top = timed[timed.cell_layer == timed.cell_layer.max()]
    return top.assign(layer=top.time)[list(stats.columns)]


def images_stats(stats, cfg):
    """What the run's images draw: its layer_stats; for a recurrent net, its top stacked layer with the
    time step as the x axis (layer := t), so that the profile is against time and the heatmap time x step."""
    if not is_recurrent(cfg) or not len(stats):
        return stats
    return top_layer_over_time(stats)


def _last_ts(metrics):
    return max((m.timestamp for m in metrics), default=0)


def found(roots, name):
    """The files called ``name`` under the directories ``roots``, sorted per root."""
    for root in roots:
        root = Path(root)
        if root.is_dir():
            yield from sorted(root.rglob(name))


def find_records(roots):
    return (path.parent for path in found(roots, rec.STATUS_FILE))


def close_parent(path):
    """Close the parent run named by a sweep's parent.json (its launcher found the store down at the
    end); True when done. Only the same launch is closed: a parent that a later launch of the grid
    reused (another launched_ms) or already closed is left as it is."""
    pending = json.loads(Path(path).read_text())
    if pending.get("synced"):
        return True
    try:
        client = tracking.client(pending["tracking_uri"])
        run = tracking.retry(client.get_run, pending["run_id"])
        if run.info.status == "RUNNING" and run.data.tags.get(rec.LAUNCHED_TAG) == pending.get(rec.LAUNCHED_TAG):
            tracking.retry(client.set_terminated, pending["run_id"], pending["status"])
    except Exception as exc:  # noqa: BLE001 - keep the record; `make sync` retries later
        print(f"warning: could not close the parent run of {path} ({tracking.short(exc)})", file=sys.stderr)
        return False
    pending["synced"] = True
    rec.write_json(path, pending)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="*",
                        default=[str(rec.REPO_ROOT / "outputs"), str(rec.REPO_ROOT / "multirun")],
                        help="directories searched for job records (default: outputs/ and multirun/)")
    args = parser.parse_args(argv)
    counts = {"already synced": 0, "uploaded": 0, "superseded": 0, "failed": 0, "unfinished": 0}
    for record in find_records(args.roots):
        status = read_status(record)
        if status.get("synced"):
            counts["already synced"] += 1
        elif status.get("status") != "FINISHED":
            counts["unfinished"] += 1
        elif upload(record, dedupe=True):
            counts["superseded" if read_status(record).get("superseded_by") else "uploaded"] += 1
        else:
            counts["failed"] += 1
    unclosed = [p for p in found(args.roots, rec.PARENT_FILE) if not json.loads(p.read_text()).get("synced")]
    closed = sum(close_parent(p) for p in unclosed)
    counts["failed"] += len(unclosed) - closed
    print("sync: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f", {closed} sweep parent runs closed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
