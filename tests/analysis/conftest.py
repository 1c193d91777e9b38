"""Fixtures for the analysis tests: synthetic frames and a real temporary MLflow store."""
import pytest

from synthetic_runs import make_frames, write_mlflow_runs

# The small MLflow grid: enough for every figure, small enough to log in seconds.
STORE_GRID = {"activations": ("relu", "sigmoid"), "inits": ("uniform", "xavier_uniform"), "depths": (2, 5),
              "optimizers": ("sgd",), "diverged": (("sigmoid", "uniform", 5, "sgd"),),
              "nan_run": ("relu", "uniform", 5, "sgd")}
EXPERIMENT = "gradpath-test"


@pytest.fixture(scope="session")
def frames():
    """2 activations x 3 inits x 2 depths x 2 optimizers, one diverged run, one run
    with NaN and inf values."""
    return make_frames()


@pytest.fixture
def frames_factory():
    """make_frames itself, for tests that need a variant."""
    return make_frames


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """A sqlite MLflow store with two sweeps in the data contract (sweep-a of study
    alpha, then sweep-b of study beta), an empty experiment, and the synthetic
    frames that were logged.

    Returns a dict: uri, client, experiment, sweeps {id: (frames, mapping, parent_id)}."""
    from mlflow.tracking import MlflowClient
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=str(root / "artifacts"))
    client.create_experiment("empty", artifact_location=str(root / "artifacts-empty"))
    sweeps = {}
    older = make_frames(**{**STORE_GRID, "depths": (2,), "diverged": ()}, sweep="sweep-a")
    sweeps["sweep-a"] = (older, *write_mlflow_runs(older, client, experiment_id, root / "work-a", sweep="sweep-a",
                                                        study="alpha"))
    newer = make_frames(**STORE_GRID, sweep="sweep-b")
    sweeps["sweep-b"] = (newer, *write_mlflow_runs(newer, client, experiment_id, root / "work-b", sweep="sweep-b",
                                                        study="beta"))
    return {"uri": uri, "client": client, "experiment": EXPERIMENT, "experiment_id": experiment_id,
            "root": root, "sweeps": sweeps}
