"""analysis.diagnosis (the verdicts of nncore.diagnosis on the load tables; nncore's own tests are
tests/nncore/test_diagnosis.py), and no verdict for a run that has nothing to judge."""
import pytest

from analysis import diagnosis

FAILED = ("sigmoid", "he_uniform", 5, "sgd")
FAILED_ID = "sigmoid-he_uniform-d5-sgd-s0"
GRID = {"activations": ("relu", "sigmoid"), "inits": ("uniform", "he_uniform"), "depths": (2, 5),
        "optimizers": ("sgd",), "diverged": (), "nan_run": None}


@pytest.fixture(scope="module")
def judged():
    """The small grid with one run that crashed before its first probe, diagnosed."""
    from synthetic_runs import make_frames
    return diagnosis.with_diagnosis(make_frames(**GRID, failed_run=FAILED)).runs.set_index("run_id")


def test_a_failed_run_without_data_has_no_verdict(judged):
    # nncore's trainability leaves out the NaN accuracy and losses and would call it trained
    assert diagnosis.core.trainability(False, float("nan"), 0.1, float("nan"), float("nan")) == "trained"
    assert judged.loc[FAILED_ID, ["pathology_init", "pathology_final", "trainability"]].tolist() == ["n/a"] * 3
    assert (judged.drop(index=FAILED_ID)["trainability"] != "n/a").all()
    assert diagnosis.no_verdict_reasons(judged) == {"FAILED": 1}


def test_runs_not_finished_or_without_scalars_have_no_trainability(frames_factory):
    frames = frames_factory(**GRID)
    runs = frames.runs.copy()
    runs.loc[runs["run_id"] == "relu-uniform-d2-sgd-s0", "status"] = "KILLED"   # it has scalars
    scalars = frames.scalars[frames.scalars["run_id"] != "relu-he_uniform-d2-sgd-s0"]
    verdicts = diagnosis.trainability(runs, scalars)
    assert verdicts["relu-uniform-d2-sgd-s0"] == "n/a" and verdicts["relu-he_uniform-d2-sgd-s0"] == "n/a"
    assert (verdicts.drop(["relu-uniform-d2-sgd-s0", "relu-he_uniform-d2-sgd-s0"]) != "n/a").all()
    full = diagnosis.trainability(frames.runs, frames.scalars)
    assert full["relu-uniform-d2-sgd-s0"] == "trained" and full["relu-he_uniform-d2-sgd-s0"] == "trained"
    assert diagnosis.no_verdict_reasons(runs.assign(trainability=runs["run_id"].map(verdicts))) == {
        "KILLED": 1, "no scalars": 1}


def test_the_pathology_counts_keep_runs_without_a_verdict_apart(judged):
    counts = diagnosis.pathology_counts(judged)
    assert list(counts.columns) == ["trained", "stalled", "diverged", "n/a"]
    assert counts.loc["n/a"].tolist() == [0, 0, 0, 1]
    assert int(counts["trained"].sum()) == int((judged["trainability"] == "trained").sum())
    assert int(counts.to_numpy().sum()) == len(judged)
    everyone = diagnosis.pathology_counts(judged.drop(index=FAILED_ID))
    assert list(everyone.columns) == ["trained", "stalled", "diverged"]   # no n/a column without such runs
