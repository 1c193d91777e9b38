"""The address that opens the experiment's runs table in the MLflow UI's model-training view.

    python -m experiments.ui [--experiment NAME] [--port 5000]     # make ui prints it, then serves

MLflow 3's UI opens an experiment in its GenAI view (an empty Traces overview, "Training runs")
unless the address asks for the model-training one: ``?workflowType=machine_learning`` gives the
"Runs" page with Runs, Models and Traces in the sidebar. The experiment is also tagged as model
training (mlflow.experimentKind, which the UI's experiment list shows); stores made before the
pre-flight set that tag get it here.
"""
import argparse
import sys
from urllib.parse import quote

from . import record, tracking


def runs_url(host, port, experiment_id):
    """The runs table of ``experiment_id`` in the model-training view (the UI's hash route)."""
    return f"http://{host}:{port}/#/experiments/{quote(str(experiment_id))}/runs?{tracking.MODEL_TRAINING_VIEW}"


def landing_url(uri, experiment, host="127.0.0.1", port=5000):
    """(url, message): the experiment's runs table, or the UI's home when the store has no such experiment."""
    db = record.sqlite_path(uri)
    if db is not None and not db.exists():
        return f"http://{host}:{port}/", f"no store at {db} yet: run a sweep first (make sweep)"
    client = tracking.client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return f"http://{host}:{port}/", f"no experiment {experiment!r} in {uri} yet"
    if tracking.EXPERIMENT_KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, tracking.EXPERIMENT_KIND_TAG, tracking.MODEL_TRAINING)
    return runs_url(host, port, found.experiment_id), ""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else the repository's mlflow.db")
    parser.add_argument("--experiment", default=record.DEFAULT_EXPERIMENT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    url, message = landing_url(record.resolve_uri(args.tracking_uri), args.experiment, args.host, args.port)
    if message:
        print(message, file=sys.stderr)
    print(f"MLflow UI: the runs of {args.experiment!r}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
