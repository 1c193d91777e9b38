"""experiments.diagnose_time: the trainability of a regression (the flags through time are
nncore.diagnosis.diagnose_through_time's, tested in tests/nncore; a job's diagnosis.parquet in
tests/experiments/test_runner.py)."""
import pytest

from experiments import diagnose_time


@pytest.mark.parametrize("diverged, mse, verdict", [
    (True, 0.001, "diverged"), (False, 0.0099, "trained"), (False, 0.0101, "stalled"), (False, 0.166, "stalled"),
    (False, float("nan"), "n/a"),
])
def test_regression_trainability_against_the_adding_baseline(diverged, mse, verdict):
    # adding's baseline 1/6: trained below 0.06 / 6 = 0.01
    assert diagnose_time.regression_trainability(diverged, mse, 1 / 6) == verdict


def test_a_run_of_no_update_is_not_judged_unless_it_diverged():
    assert diagnose_time.regression_trainability(False, 0.001, 1 / 6, steps=0) == "n/a"   # train.epochs=0
    assert diagnose_time.regression_trainability(True, float("nan"), 1 / 6, steps=0) == "diverged"
    assert diagnose_time.regression_trainability(False, 0.001, 1 / 6, steps=3) == "trained"
