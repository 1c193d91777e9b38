"""analysis.observations: sentences that leave out what the diagnosis could not judge."""
import pytest

from analysis import diagnosis, observations
from synthetic_runs import SMALL_GRID



@pytest.fixture(scope="module")
def runs():
    """The small grid, diagnosed, with sigmoid + he_uniform at depth 5 crashed before its first probe."""
    from synthetic_runs import make_frames
    return diagnosis.with_diagnosis(make_frames(**SMALL_GRID, failed_run=("sigmoid", "he_uniform", 5, "sgd"))).runs


def test_a_pair_without_a_verdict_is_not_healthy(runs):
    assert runs.loc[runs["pathology_init"] == "none", "run_id"].tolist() == [
        "relu-uniform-d2-sgd-s0", "relu-uniform-d5-sgd-s0", "relu-he_uniform-d2-sgd-s0",
        "relu-he_uniform-d5-sgd-s0", "sigmoid-uniform-d2-sgd-s0", "sigmoid-he_uniform-d2-sgd-s0"]
    assert observations.diagnosis_headline(runs) == (
        "At depth 5 the diagnosis finds no pathology at initialization for 2 of 3 activation × init pairs "
        "(relu + he_uniform and relu + uniform); vanishing: sigmoid + uniform (a pair counts as flagged when at "
        "least half of its judged runs are); no verdict for sigmoid + he_uniform: no run of this pair has a "
        "probe at initialization.")


def test_runs_without_a_trainability_verdict_are_left_out_of_the_trained_counts(runs):
    assert observations.pathology_observations(runs) == [
        "Of the 1 runs flagged at initialization, 0 trained.",
        "Of the 6 runs without a flag at initialization, 5 trained.",
        "1 run(s) without a trainability verdict (not finished, or no scalars logged) are left out of these counts."]

