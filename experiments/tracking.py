"""MLflow tracking: store resolution, checks, experiment creation, retries and batched logging.

The default store is sqlite:///<repo>/mlflow.db with artifacts in <repo>/mlartifacts;
``tracking.uri`` or $MLFLOW_TRACKING_URI selects another (an http:// server works the same):
experiments.record.resolve_uri is the rule.
"""
import functools
import os
import sqlite3
import time
import urllib.error
import urllib.request

from .record import sqlite_path

BATCH = 1000  # MLflow's limit of metrics per log_batch call
PARAM_BATCH = 100

# MLflow 3 sends usage telemetry to its servers from every process that imports it, unless told not
# to. A study harness does not phone home, and the telemetry's network calls at start and exit cost a
# single run about 0.4 s. MLFLOW_DISABLE_TELEMETRY=false in the environment turns it back on.
TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"
os.environ.setdefault(TELEMETRY_ENV, "true")  # set on import: MLflow reads it when it is first imported

# MLflow retries every HTTP request itself (7 times with backoff factor 2 and a 120 s timeout: about
# 4 minutes per call against a server that is down), and ``retry`` below would repeat that 6 times.
# Here ``retry`` does the retrying, about 6 s in all; the environment can set either back.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
for _key, _value in HTTP_DEFAULTS.items():
    os.environ.setdefault(_key, _value)


class StoreError(RuntimeError):
    """The tracking store cannot be used; the message says why."""


def artifact_location(uri, experiment):
    """Where a new experiment's artifacts go: beside the sqlite file; the server decides otherwise."""
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / "mlartifacts" / experiment).as_uri()


def check_store(uri, timeout=3.0, writable=True):
    """Fail fast with one clear reason if the store is unusable (before any run is created);
    ``writable=False`` for a reader (the report without logging), which needs no write access."""
    db = sqlite_path(uri)
    if db is not None:
        parent = db.resolve().parent
        if not parent.exists():
            raise StoreError(f"tracking store {uri}: directory {parent} does not exist")
        if not parent.is_dir():
            raise StoreError(f"tracking store {uri}: {parent} is not a directory")
        if writable and (not os.access(parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK))):
            raise StoreError(f"tracking store {uri}: {db if db.exists() else parent} is not writable")
        if db.exists() and db.stat().st_size > 0:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=timeout) as con:
                    result = con.execute("PRAGMA quick_check").fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"tracking store {uri}: {db} is not a usable sqlite database ({exc})") from None
            if not result or result[0] != "ok":
                raise StoreError(f"tracking store {uri}: {db} is corrupted ({result[0] if result else 'no result'})")
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(f"tracking server {uri} is unreachable ({reason})") from None


TRANSIENT = ("database is locked", "connection", "timed out", "temporarily unavailable", "503", "502", "500",
             "504", "max retries exceeded", "server error")


def is_transient(exc):
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in TRANSIENT)


def short(exc):
    """First line of an exception, for one-line warnings."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


ENV_RETRY_ATTEMPTS = "GRADPATH_RETRY_ATTEMPTS"


def retry(fn, *args, attempts=None, base_delay=0.2, **kwargs):
    """fn(*args, **kwargs), retried with exponential backoff on transient store errors.

    ``attempts`` defaults to $GRADPATH_RETRY_ATTEMPTS, else 6 (about 6 s of waiting in all).
    """
    if attempts is None:
        attempts = max(1, int(os.environ.get(ENV_RETRY_ATTEMPTS) or 6))
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several unrelated types
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(base_delay * 2 ** attempt)


def client(uri, migration_timeout=60.0):
    """MlflowClient for ``uri``. Opening a sqlite store creates and migrates its tables when they
    are missing or behind (``sqlite_schema``): our own processes serialize on the store's file
    lock, and another client's migration (a notebook, `mlflow ui`, a script polling a store that did
    not exist yet) is never run into."""
    from mlflow.tracking import MlflowClient
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    from filelock import FileLock
    with FileLock(str(db) + ".lock", timeout=120):
        sqlite_schema(db, migration_timeout)
        return MlflowClient(tracking_uri=uri)


@functools.lru_cache(maxsize=1)
def _head_revision():
    """MLflow's current schema revision (read from its migration scripts: once per process)."""
    from mlflow.store.db.utils import _get_latest_schema_revision
    return _get_latest_schema_revision()


def _schema_version(db):
    """The alembic revision of the sqlite file ``db``; None while it has none (or no file)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def sqlite_schema(db, timeout=60.0, quiet=3.0):
    """Leave the sqlite store ``db`` at MLflow's current schema without racing another client.

    Two clients that create or migrate one new store at once break it (measured: 'duplicate column
    name', 'table experiments already exists', and once a store left half-migrated for good). So a
    new store is built in a temporary file beside it and published by a hard link, which fails if
    the file appeared meanwhile; another client then never sees our tables half-made. A store that
    exists behind the schema is left alone while it changes (another client is migrating it) until
    it reaches the schema or stays unchanged for ``quiet`` s (an older store: MLflow says what to
    do). Call with the store's file lock held."""
    head = _head_revision()
    if _schema_version(db) == head:
        return
    if not db.exists():
        tmp = db.with_name(f".{db.name}.{os.getpid()}.new")
        tmp.unlink(missing_ok=True)
        try:
            from mlflow.tracking import MlflowClient
            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)  # creates the tables
            os.link(tmp, db)
            return
        except FileExistsError:
            pass  # another client made the file meanwhile: wait for it below
        finally:
            tmp.unlink(missing_ok=True)
    deadline, seen, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        if _schema_version(db) == head:
            return
        journal = db.with_name(db.name + "-journal")
        state = [(p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None for p in (db, journal)]
        if state != seen:
            seen, since = state, time.monotonic()
        elif time.monotonic() - since > quiet:
            return  # nobody is migrating it: MLflow opens it (and migrates an empty file) or says why not
        time.sleep(0.05)


def get_or_create_experiment(mlflow_client, uri, name):
    """Experiment id for ``name``, created once; a file lock guards sqlite against the creation race."""
    from filelock import FileLock

    def get_or_create():
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise StoreError(f"experiment {name!r} is deleted in {uri}; restore it or choose another name")
            if EXPERIMENT_KIND_TAG not in exp.tags:  # made before the tag existed; a kind chosen in the UI stays
                mlflow_client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
            return exp.experiment_id
        return mlflow_client.create_experiment(name, artifact_location=artifact_location(uri, name),
                                               tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})

    db = sqlite_path(uri)
    if db is None:
        return retry(get_or_create)
    with FileLock(str(db) + ".lock", timeout=120):
        return retry(get_or_create)


NOTE_TAG = "mlflow.note.content"        # a run's or an experiment's markdown description in the UI
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"   # MLflow's kind for a model-training experiment
# The query of an address inside the MLflow UI that selects its model-training view: without it,
# MLflow 3.17 shows experiments and runs in its GenAI view (Traces, Judges, "Evaluations").
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def describe_latest_sweep(mlflow_client, experiment_id, sweep_id, parent_run_id, parent_name, report=False):
    """Set the experiment's description to name its latest sweep and that sweep's parent run, with
    links that work inside the UI (and to the parent's report, once ``make report`` logged it)."""
    run = f"#/experiments/{experiment_id}/runs/{parent_run_id}"
    text = (f"**Latest sweep:** `{sweep_id}`, parent run [{parent_name}]({run}?{MODEL_TRAINING_VIEW}): its "
            "description is the report's at-a-glance section, its children are the sweep's job runs.")
    if report:
        text += f" Report: [report.html]({run}/artifacts/report/report.html?{MODEL_TRAINING_VIEW})."
    else:
        text += " Run `make report` to add the report."
    retry(mlflow_client.set_experiment_tag, experiment_id, NOTE_TAG, text)
