"""MLflow runs -> tidy pandas DataFrames.

    frames = load_frames()                                  # latest sweep of "gradpath"
    frames = load_frames(sweep="2025-11-23_18-30-00")       # one sweep
    frames = load_frames(study="he2015")                    # latest sweep of a named study
    frames = load_frames(all_runs=True)                     # every job run of the experiment

``Frames`` holds five long-format tables keyed by ``run_id``:
  runs         one row per job run: configuration, outcome, the job's verdict tags and final metrics
  layer_stats  run_id, step, layer, stat, value          (layer_stats.parquet)
  histograms   run_id, step, layer, kind, bin, left, right, count   (histograms.parquet)
  scalars      run_id, step, name, value                 (scalars.parquet)
  diagnosis    run_id, step, layer, flag, raised         (diagnosis.parquet: the job's per-layer flags)

A sweep's runs are its grid: its parent run's grid record (grid.json) lists every grid point's
config_hash, and each point's run is the latest FINISHED job run with that hash, whichever sweep ran
it (a sweep skips the points already FINISHED). Parents without the record: the runs tagged with
the sweep.

The runs come from a few ``search_runs`` calls (their latest metrics included);
the per-step histories come from each run's Parquet artifacts, read straight from
disk when the artifact store is local.
"""
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from experiments import record, tracking
from nncore import activations
from experiments.record import DEFAULT_EXPERIMENT, REPO_ROOT  # noqa: F401 - re-exported for analysis

# The metrics a run's row carries: the scalars' last values and, when it diverged, diverged_step.
FINAL_METRICS = (record.LOSS_TRAIN, record.LOSS_VAL, record.ACC_TRAIN, record.ACC_VAL, record.DIVERGED_STEP)

RECURRENT_COLUMNS = {"cell": "str", "recurrent_init": "str", "seq_len": "float64", "forget_bias": "float64",
                     "recurrent_gain": "float64", "baseline_mse": "float64", "clip_norm": "float64",
                     "clipped_fraction": "float64"}
# Column -> dtype of each table. Empty tables are built from these too, so that
# downstream code never meets a frame without the expected columns.
RUN_COLUMNS = {
    "run_id": "str", "run_name": "str", "sweep": "str",
    "activation": "str", "init": "str", "optimizer": "str",
    "depth": "int64", "width": "int64", "dataset": "str", "seed": "int64", "lr": "float64",
    "sigma_w": "float64", "sigma_b": "float64", "gain": "float64",
    **{key: "float64" for key in activations.parameter_names()},  # the activations' parameters (alpha)
    "n_in": "float64", "n_out": "float64",  # network input/output widths (tags), NaN if not logged
    "momentum": "float64",  # NaN when not logged (rules without momentum)
    "majority_rate": "float64",  # of the validation labels (tag), NaN if not logged
    "outcome": "str", "status": "str",
    # the job's verdicts (experiments.record.VERDICT_TAGS), "" when the run has no such tag
    **{tag: "str" for tag in record.VERDICT_TAGS},
    **{name: "float64" for name in FINAL_METRICS},  # diverged_step: NaN unless the run diverged
    # architecture (conf/arch/: experiments.config.arch_label); runs logged before it are plain MLPs
    "arch": "str", "norm": "str", "residual_scale": "float64",
    # recurrent nets (conf/arch/rnn|lstm|gru): cell "none" for an MLP; seq_len T, the regression's
    # baseline MSE (tag), clip_norm (param) and the fraction of updates clipped (metric), NaN when absent
    **RECURRENT_COLUMNS,
    # the run's values of the params that vary among runs of the same standard axes ("" when none):
    # "optimizer.lr=50, init.sigma_w=12" (varying_params)
    "variant": "str",
}
# The job record's Parquet tables (experiments.record), keyed by run_id; the scalars' timestamps are
# the writer's business. Their string columns hold a few distinct names over millions of rows (a
# 1,000-run sweep: 4.2 M layer-statistic and 17.7 M histogram rows), so they are categorical: a
# filtered copy then moves integer codes instead of strings (the report's text took 13 s of a
# 1,000-run report filtering string columns), and the frames take a third to a half of the memory.
KEY_COLUMNS = {"run_id": "category"}
LAYER_STATS_COLUMNS = {**KEY_COLUMNS, **record.LAYER_STATS_COLUMNS, "stat": "category"}
HISTOGRAM_COLUMNS = {**KEY_COLUMNS, **record.HISTOGRAM_COLUMNS, "kind": "category"}
SCALAR_COLUMNS = {**KEY_COLUMNS, **{k: v for k, v in record.SCALAR_COLUMNS.items() if k != "timestamp"},
                  "name": "category"}
DIAGNOSIS_COLUMNS = {**KEY_COLUMNS, **record.DIAGNOSIS_COLUMNS, "flag": "category"}

# Artifact file -> (table name, columns).
ARTIFACTS = {
    record.LAYER_STATS_FILE: ("layer_stats", LAYER_STATS_COLUMNS),
    record.HISTOGRAMS_FILE: ("histograms", HISTOGRAM_COLUMNS),
    record.SCALARS_FILE: ("scalars", SCALAR_COLUMNS),
    record.DIAGNOSIS_FILE: ("diagnosis", DIAGNOSIS_COLUMNS),
}
OPTIONAL_ARTIFACTS = (record.DIAGNOSIS_FILE,)  # not noted when missing

# (column, tag, param): the tags are the contract's short names; the dot-flattened
# Hydra params are the fallback for runs logged before a tag existed.
CONFIG_FIELDS = (
    ("activation", "activation", "activation.name"),
    ("init", "init", "init.name"),
    ("optimizer", "optimizer", "optimizer.name"),
    ("depth", "depth", "model.depth"),
    ("width", "width", "model.width"),
    ("dataset", "dataset", "data.name"),
    ("seed", "seed", "seed"),
)
INIT_PARAMS = (("sigma_w", "init.sigma_w"), ("sigma_b", "init.sigma_b"), ("gain", "init.gain"),
               *((key, f"activation.{key}") for key in activations.parameter_names()),
               ("momentum", "optimizer.momentum"))
REQUIRED_FIELDS = ("activation", "init", "optimizer", "depth", "width", "seed")

# The runs table's columns that name a run (observations.config_name) and the params behind them: runs
# that agree on these and differ in another param would be merged, so that param is a variant key.
STANDARD_AXES = ("activation", "init", "optimizer", "depth", "seed", "dataset")
STANDARD_PARAMS = ("activation.name", "init.name", "optimizer.name", "model.depth", "seed", "data.name")
# Params that say where a run was recorded, not what it computed.
NOT_SETTINGS = ("tracking.", "data.cache_dir")

SEARCH_PAGE_SIZE = 1000


class SelectionError(ValueError):
    """The requested runs cannot be selected; the message says why, in one line."""


class NoRunsError(SelectionError):
    """The experiment, the sweep or the store holds no runs to analyse."""


@dataclass
class Frames:
    """The tables of one analysis, and where they came from."""
    runs: pd.DataFrame
    layer_stats: pd.DataFrame
    histograms: pd.DataFrame
    scalars: pd.DataFrame
    experiment: str = ""
    experiment_id: str = ""
    sweep: str = ""              # "" when the runs are not one sweep
    parent_run_id: str = ""      # the sweep's parent run, "" when there is none
    tracking_uri: str = ""
    notes: list = field(default_factory=list)  # what was skipped or missing, for the report
    flags: object = None         # per-layer diagnosis (analysis.diagnosis.with_diagnosis), None until computed
    diagnosis: object = None     # the jobs' diagnosis.parquet tables (DIAGNOSIS_COLUMNS), None when not loaded
    varying: dict = field(default_factory=dict)  # param -> its distinct values, for the params of runs.variant


def empty_frame(columns):
    """A frame with ``columns`` (name -> dtype) and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def open_client(tracking_uri, writable=False):
    """An MlflowClient for ``tracking_uri``; refuses a sqlite file that does not exist (NoRunsError),
    because opening it would silently create an empty store, and an unusable store
    (experiments.tracking.check_store: a corrupt sqlite file, an unreachable server; StoreError,
    one line). Reading needs no write access; ``writable`` (to log the report) checks it too."""
    db = record.sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        raise NoRunsError(f"no MLflow store at {db} (tracking URI {tracking_uri})")
    tracking.check_store(tracking_uri, writable=writable)
    return tracking.client(tracking_uri)


def quoted(value):
    """``value`` as a single-quoted MLflow filter literal."""
    if "'" in value:
        raise SelectionError(f"names with a single quote are not supported in MLflow filters: {value!r}")
    return f"'{value}'"


def search_all_runs(client, experiment_id, filter_string, order_by=None):
    """Every run matching ``filter_string``, following the result pages."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=SEARCH_PAGE_SIZE,
                                  order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def latest_parent_run(client, experiment_id, sweep=None, study=None):
    """The most recently launched parent run (of ``sweep`` / ``study`` if given), else None: by its
    experiments.record.LAUNCHED_TAG (a grid run again reuses its parent, started long before), then,
    for parents logged before that tag, by start time."""
    filter_string = "tags.role = 'parent'"
    if sweep is not None:
        filter_string += f" and tags.sweep = {quoted(sweep)}"
    if study is not None:
        filter_string += f" and tags.study = {quoted(study)}"
    page = client.search_runs([experiment_id], filter_string, max_results=1,
                              order_by=[f"tags.{record.LAUNCHED_TAG} DESC", "attributes.start_time DESC"])
    return page[0] if page else None


def _known_tag_values(client, experiment_id, tag):
    """The distinct values of ``tag`` over the parent runs (for error messages)."""
    parents = search_all_runs(client, experiment_id, "tags.role = 'parent'")
    return sorted({run.data.tags.get(tag, "") for run in parents} - {""})


def _as_number(text, kind):
    """``text`` (an MLflow tag or param string) as int or float; None when unparsable."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    if kind == "int":
        return int(number) if number.is_integer() else None
    return number


def _float(text):
    """``text`` (an MLflow tag or param string) as a float; NaN when absent or unparsable."""
    value = _as_number(text, "float")
    return np.nan if value is None else value


def run_record(run):
    """One row of the runs table from an MLflow Run, and the missing required fields."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    row = {"run_id": run.info.run_id, "run_name": run.info.run_name or "", "sweep": tags.get("sweep", "")}
    for column, tag, param in CONFIG_FIELDS:
        row[column] = tags.get(tag, params.get(param))
    for column in ("depth", "width", "seed"):
        row[column] = _as_number(row[column], "int")
    row["lr"] = _float(params.get("optimizer.lr"))
    row["dataset"] = row["dataset"] or ""
    # Initializer and activation parameters, for the mean-field predictions (NaN when not logged).
    for column, param in INIT_PARAMS:
        row[column] = _float(params.get(param))
    for column in ("n_in", "n_out", "majority_rate"):
        row[column] = _float(tags.get(column))
    # A run without the tag has not reported its outcome (crashed or still running).
    row["outcome"] = tags.get("outcome", "unknown")
    for tag in record.VERDICT_TAGS:
        row[tag] = tags.get(tag, "")
    row["status"] = run.info.status
    row["arch"] = tags.get("arch", "plain")
    row["norm"] = tags.get("norm", params.get("model.norm", "none"))
    residual = tags.get("residual", params.get("model.residual", "False")).lower() == "true"
    scale = _as_number(tags.get("residual_scale", params.get("model.residual_scale")), "float")
    row["residual_scale"] = (1.0 if scale is None else scale) if residual else np.nan
    for name in FINAL_METRICS:
        row[name] = metrics.get(name, np.nan)
    row.update(recurrent_fields(tags, params, metrics))
    row["variant"] = ""  # set by with_variants, which compares the runs
    missing = [name for name in REQUIRED_FIELDS if row[name] is None]
    return row, missing


def recurrent_fields(tags, params, metrics):
    """The RECURRENT_COLUMNS of a run (an MLP's: cell "none", NaN elsewhere)."""
    return {"cell": tags.get("cell", params.get("model.cell", "none")),
            "recurrent_init": tags.get("recurrent_init", params.get("model.recurrent_init", "")),
            "seq_len": _float(tags.get("seq_len")), "forget_bias": _float(params.get("model.forget_bias")),
            "recurrent_gain": _float(params.get("model.recurrent_gain")),
            "baseline_mse": _float(tags.get("baseline_mse")), "clip_norm": _float(params.get("train.clip_norm")),
            "clipped_fraction": metrics.get(record.CLIPPED_FRACTION, np.nan)}


def latest_attempts(mlflow_runs, per_sweep=True):
    """(runs, number dropped): one run per config_hash (of each sweep with ``per_sweep``, else
    over all sweeps). A resumed sweep re-runs the jobs a killed one left unfinished, so a
    configuration can have several attempts; keep the latest FINISHED one, else the latest
    started. Runs without a config_hash are all kept."""
    best = {}
    kept = []
    for run in mlflow_runs:
        cfg_hash = run.data.tags.get("config_hash", "")
        if not cfg_hash:
            kept.append(run)
            continue
        rank = (run.info.status == "FINISHED", run.info.start_time or 0)
        key = (run.data.tags.get("sweep", "") if per_sweep else "", cfg_hash)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, run)
    kept += [run for _, run in best.values()]
    return kept, len(mlflow_runs) - len(kept)


def runs_table(mlflow_runs, per_sweep=True):
    """(runs DataFrame, notes) from MLflow Run objects: one attempt per configuration (of each
    sweep with ``per_sweep``, see latest_attempts); runs lacking a required field are left out
    and named in the notes."""
    attempts, superseded = latest_attempts(mlflow_runs, per_sweep)
    notes = [f"{superseded} earlier attempt(s) of re-run configurations ignored"] if superseded else []
    records = []
    for run in attempts:
        record, missing = run_record(run)
        if missing:
            notes.append(f"run {run.info.run_id} skipped: no {', '.join(missing)} tag or param")
            continue
        records.append(record)
    if not records:
        return empty_frame(RUN_COLUMNS), notes
    runs = pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS))
    runs = runs.astype(RUN_COLUMNS)
    # A stable order (configuration first) makes every table and figure reproducible.
    runs = runs.sort_values(["activation", "init", "optimizer", "depth", "seed", "run_id"])
    return runs.reset_index(drop=True), notes


def _value_order(value):
    """Sort key of param strings: numbers by value, before the other strings."""
    number = _as_number(value, "float")
    return (0, number, "") if number is not None else (1, 0.0, value)


def varying_params(runs, params):
    """{param: sorted distinct values} of the params that take several values among runs that agree
    on every standard axis (STANDARD_AXES): runs that the report would otherwise name, and group,
    alike (optimizer.lr, init.sigma_w, optimizer.betas, model.width, ...). A param that only follows a
    standard axis (adam's betas, sgd's momentum) does not vary. ``params`` is {run_id: {param: value}};
    a param a run does not log counts as the value "-"."""
    if runs.empty:
        return {}
    table = pd.DataFrame.from_dict({run_id: params.get(run_id, {}) for run_id in runs["run_id"]}, orient="index")
    keys = [key for key in table.columns if key not in STANDARD_PARAMS and not key.startswith(NOT_SETTINGS)]
    if not keys:
        return {}
    table = table[keys].fillna("-").astype(str)
    axes = runs.set_index("run_id").loc[table.index, list(STANDARD_AXES)]
    spread = table.groupby([axes[name].to_numpy() for name in STANDARD_AXES]).nunique().max()
    return {key: sorted(table[key].unique(), key=_value_order) for key in keys if spread[key] > 1}


def with_variants(runs, params):
    """(``runs`` with each run's variant label, varying_params)."""
    varying = varying_params(runs, params)
    runs = runs.copy()
    if varying:
        runs["variant"] = [", ".join(f"{key}={params.get(run_id, {}).get(key, '-')}" for key in varying)
                           for run_id in runs["run_id"]]
    return runs, varying


def local_artifact_dir(artifact_uri):
    """The run's artifact directory when the artifact store is a local path, else None."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # "C:\..."
        return Path(artifact_uri)
    return None


def read_artifact(artifact_uri, filename, tracking_uri, read):
    """``read(path)`` of the run's artifact ``filename``, or None when it is missing."""
    from mlflow.exceptions import MlflowException
    local_dir = local_artifact_dir(artifact_uri)
    if local_dir is not None:
        path = local_dir / filename
        return read(path) if path.exists() else None
    import mlflow.artifacts
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"{artifact_uri}/{filename}",
                                                       dst_path=tmp, tracking_uri=tracking_uri)
        except (MlflowException, OSError):
            return None
        return read(path)


def read_artifact_table(artifact_uri, filename, tracking_uri):
    """The run's artifact ``filename`` as a pyarrow Table, or None when it is missing."""
    return read_artifact(artifact_uri, filename, tracking_uri, pq.read_table)


PA_TYPES = {"str": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
            "category": pa.dictionary(pa.int32(), pa.string())}


def _conform(table, columns, run_id):
    """``table`` restricted to ``columns`` (minus run_id) in the contract's types, with a
    run_id column prepended; None when a column is missing."""
    data_columns = [name for name in columns if name != "run_id"]
    if any(name not in table.column_names for name in data_columns):
        return None
    schema = pa.schema([(name, PA_TYPES[columns[name]]) for name in data_columns])
    table = table.select(data_columns).cast(schema)
    # one dictionary entry and a column of zeros, not num_rows copies of the string
    run_ids = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)), pa.array([run_id]))
    return table.add_column(0, "run_id", run_ids)


def _to_frame(tables, columns):
    if not tables:
        return empty_frame(columns)
    frame = pa.concat_tables(tables).to_pandas()
    for name, dtype in columns.items():
        if dtype == "category":  # sorted categories: group and sort orders stay those of the strings
            frame[name] = frame[name].cat.reorder_categories(sorted(frame[name].cat.categories))
    return frame.astype(columns)


def read_artifact_frames(runs, artifact_uris, tracking_uri):
    """({table name: DataFrame}, notes) from every run's Parquet artifacts."""
    tables = {name: [] for name, _ in ARTIFACTS.values()}
    missing = {filename: 0 for filename in ARTIFACTS}
    malformed = {filename: 0 for filename in ARTIFACTS}
    for run_id in runs["run_id"]:
        for filename, (name, columns) in ARTIFACTS.items():
            table = read_artifact_table(artifact_uris[run_id], filename, tracking_uri)
            conformed = None if table is None else _conform(table, columns, run_id)
            if table is None:
                missing[filename] += 1
            elif conformed is None:
                malformed[filename] += 1
            else:
                tables[name].append(conformed)
    # runs logged before the job's diagnosis have no diagnosis.parquet: analysis.diagnosis notes them
    notes = [f"{count} run(s) have no {filename}" for filename, count in missing.items()
             if count and filename not in OPTIONAL_ARTIFACTS]
    notes += [f"{count} run(s) have a {filename} without the expected columns"
              for filename, count in malformed.items() if count]
    frames = {name: _to_frame(tables[name], columns) for name, columns in ARTIFACTS.values()}
    return frames, notes


def sweep_grid(parent, tracking_uri):
    """(config_hashes of the sweep's grid, note): the parent run's grid record (experiments.sweep
    writes every grid point's config_hash to its GRID_FILE artifact), or (None, note) when it has
    none (parents logged before the record existed: note "") or it cannot be read."""
    def read(path):
        return Path(path).read_text()
    text = read_artifact(parent.info.artifact_uri, record.GRID_FILE, tracking_uri, read)
    if text is None:
        return None, ""
    try:
        hashes = [str(point["config_hash"]) for point in json.loads(text)]
    except (ValueError, TypeError, KeyError) as error:
        return None, (f"the {record.GRID_FILE} of parent run {parent.info.run_id} is unreadable ({error}): "
                      "runs selected by their sweep tag")
    return list(dict.fromkeys(hashes)), ""


def grid_runs(client, experiment_id, own_runs, hashes):
    """(candidate runs, note) of a sweep's grid: its own job runs and the FINISHED job runs of
    any sweep (or none) whose config_hash is in ``hashes``. A sweep skips the grid points already
    FINISHED, whose runs carry the sweep tag of the sweep that ran them; latest_attempts over all
    sweeps then keeps, per grid point, the latest FINISHED run. The note counts the grid points
    with no run at all."""
    wanted = set(hashes)
    own_ids = {run.info.run_id for run in own_runs}
    finished = search_all_runs(client, experiment_id, "tags.role = 'job' and attributes.status = 'FINISHED'")
    others = [run for run in finished
              if run.info.run_id not in own_ids and run.data.tags.get("config_hash", "") in wanted]
    candidates = own_runs + others
    covered = {run.data.tags.get("config_hash", "") for run in candidates}
    missing = len(wanted - covered)
    note = f"{missing} of the {len(wanted)} grid points have no job run" if missing else ""
    return candidates, note


def select_runs(client, experiment, sweep=None, all_runs=False, study=None, tracking_uri=None):
    """(job runs, sweep id, parent run or None, notes, per_sweep) for the requested selection: every
    job run, one sweep, the latest sweep of a study, or the latest sweep. A sweep's runs are those of
    its parent's grid record (sweep_grid, grid_runs; ``per_sweep`` False: one run per grid point,
    whichever sweep ran it), else, for parents without one, the job runs tagged with the sweep."""
    experiment_id = experiment.experiment_id
    if all_runs:
        return search_all_runs(client, experiment_id, "tags.role = 'job'"), "", None, [], True
    notes = []
    if sweep is None:
        parent = latest_parent_run(client, experiment_id, study=study)
        if parent is None:
            # Single runs (no sweep) have no parent: take all job runs (of the study).
            filter_string = "tags.role = 'job'" + (f" and tags.study = {quoted(study)}" if study else "")
            runs = search_all_runs(client, experiment_id, filter_string)
            if not runs and study is not None:
                known = _known_tag_values(client, experiment_id, "study")
                raise NoRunsError(f"no runs of study {study!r} in experiment {experiment.name!r}"
                                  f" (studies: {', '.join(known) if known else 'none'})")
            notes.append(f"no sweep parent run in the experiment: using all {len(runs)} job run(s)")
            return runs, "", None, notes, True
        sweep = parent.data.tags.get("sweep", "")
    else:
        parent = latest_parent_run(client, experiment_id, sweep)
    runs = search_all_runs(client, experiment_id,
                           f"tags.role = 'job' and tags.sweep = {quoted(sweep)}")
    hashes, note = sweep_grid(parent, tracking_uri) if parent is not None else (None, "")
    notes += [note] if note else []
    if hashes is not None:
        runs, note = grid_runs(client, experiment_id, runs, hashes)
        notes += [note] if note else []
    if not runs:
        known = _known_tag_values(client, experiment_id, "sweep")
        raise NoRunsError(f"no job runs of sweep {sweep!r} in experiment {experiment.name!r}"
                          f" (sweeps: {', '.join(known) if known else 'none'})")
    return runs, sweep, parent, notes, hashes is None


def load_frames(experiment=DEFAULT_EXPERIMENT, sweep=None, all_runs=False, tracking_uri=None, study=None):
    """The Frames of one sweep (default: the most recent parent run's; with ``study``,
    the most recent of that study's) or, with ``all_runs``, of every job run in
    ``experiment``.

    Raises NoRunsError (a ValueError) for a missing store, an unknown experiment or
    sweep, or an experiment without job runs, and experiments.tracking.StoreError for a store
    that cannot be used.
    """
    tracking_uri = record.resolve_uri(tracking_uri)
    client = open_client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise NoRunsError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    mlflow_runs, sweep_id, parent, notes, per_sweep = select_runs(client, found, sweep, all_runs, study,
                                                                  tracking_uri)
    if not mlflow_runs:
        raise NoRunsError(f"experiment {experiment!r} at {tracking_uri} has no job runs")
    runs, skipped = runs_table(mlflow_runs, per_sweep)
    notes += skipped
    if runs.empty:
        raise NoRunsError(f"experiment {experiment!r}: none of the {len(mlflow_runs)} job runs"
                          " has its configuration tags")
    kept = set(runs["run_id"])
    kept_runs = [run for run in mlflow_runs if run.info.run_id in kept]
    runs, varying = with_variants(runs, {run.info.run_id: run.data.params for run in kept_runs})
    artifact_uris = {run.info.run_id: run.info.artifact_uri for run in kept_runs}
    tables, artifact_notes = read_artifact_frames(runs, artifact_uris, tracking_uri)
    notes += artifact_notes
    return Frames(runs=runs, layer_stats=tables["layer_stats"], histograms=tables["histograms"],
                  scalars=tables["scalars"], diagnosis=tables["diagnosis"], experiment=experiment,
                  experiment_id=found.experiment_id, sweep=sweep_id,
                  parent_run_id=parent.info.run_id if parent is not None else "",
                  tracking_uri=tracking_uri, notes=notes, varying=varying)
