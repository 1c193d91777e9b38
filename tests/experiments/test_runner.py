"""experiments.runner.freeze_imports: the heavy modules are imported once and out of the collector's reach."""
import subprocess
import sys

PROBE = """
import gc, sys
from experiments import runner
runner.freeze_imports()
frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())
runner.freeze_imports()
print(frozen, tracked, gc.get_freeze_count(), gc.isenabled(),
      'mlflow.store.tracking.sqlalchemy_store' in sys.modules)
"""


def test_freeze_imports_imports_mlflow_and_freezes_once():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    frozen, tracked, frozen_again, enabled, imported = out.stdout.split()
    assert int(frozen) > 100_000          # MLflow's, SQLAlchemy's, pandas' objects...
    assert int(tracked) < int(frozen) // 10  # ...which a collection no longer traverses
    assert frozen_again == frozen          # a second call freezes nothing more
    assert enabled == "True" and imported == "True"
