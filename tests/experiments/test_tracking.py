"""experiments.tracking.client: MLflow's usage telemetry is off unless the environment turns it on."""
import os
import subprocess
import sys

PROBE = ("import os, sys; from experiments import tracking; "
         "tracking.client('sqlite:///' + sys.argv[1]); "
         "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY; "
         "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], MLFLOW_DISABLE_TELEMETRY.get())")


def _client_env(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "mlflow.db")], env={**base, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_telemetry_is_off_by_default(tmp_path):
    assert _client_env(tmp_path) == ["true", "True"]


def test_an_explicit_setting_is_kept(tmp_path):
    assert _client_env(tmp_path, MLFLOW_DISABLE_TELEMETRY="false") == ["false", "False"]
