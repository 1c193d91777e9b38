"""MLflow tracking: store resolution, checks, experiment creation, retries and batched logging.

The default store is sqlite:///<repo>/mlflow.db with artifacts in <repo>/mlartifacts;
``tracking.uri`` or $MLFLOW_TRACKING_URI selects another (an http:// server works the same):
experiments.record.resolve_uri is the rule.
"""
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


def client(uri):
    """MlflowClient for ``uri``. Opening a sqlite store creates and migrates its tables, which
    races when several processes open a new store at once: the store's file lock serializes it."""
    from mlflow.tracking import MlflowClient
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    from filelock import FileLock
    with FileLock(str(db) + ".lock", timeout=120):
        return MlflowClient(tracking_uri=uri)


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
