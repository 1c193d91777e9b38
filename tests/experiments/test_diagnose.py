"""experiments.diagnose: a job's verdict tags and diagnosis.parquet, on real networks trained (or
not: train.epochs=0) on the bundled digits, without MLflow. The network's flags at step 0 depend
on its weights alone; the budget (frozen) is judged only when the run has optimizer steps."""
import pandas as pd
import pytest

from experiments import datasets, record
from experiments.config import validate
from experiments.diagnose import diagnose_job
from experiments.runner import Recorder, build, histogram_steps
from nncore import diagnosis, train
from nncore.training import n_steps

BASE = ("model.width=32", "train.batch_size=256", "train.log_every=5", "train.probe_size=128")


def job(compose_cfg, tmp_path, *overrides):
    """(tags, diagnosis.parquet table) of one job run in-process, as experiments.runner runs it."""
    cfg = compose_cfg(*BASE, *overrides)
    validate(cfg)
    data = datasets.load(cfg.data, cfg.seed)
    net, opt = build(cfg, data)
    total = n_steps(data.X_train.shape[0], cfg.train.batch_size, cfg.train.epochs)
    recorder = Recorder(data, net.n_layers)
    probe_n = min(cfg.train.probe_size, data.X_train.shape[0])
    result = train(net, opt, data.X_train, data.y_train, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                   probe_X=data.X_train[:probe_n], probe_y=data.y_train[:probe_n], log_every=cfg.train.log_every,
                   callback=recorder, histogram_steps=histogram_steps(total, cfg.train.log_every, 0))
    out = tmp_path / "_".join(overrides).replace("=", "-").replace("/", "-")
    out.mkdir()
    tags = diagnose_job(cfg, net, recorder.layer_stats(), recorder.scalars(), data, result, total, out)
    return tags, pd.read_parquet(out / record.DIAGNOSIS_FILE)


@pytest.mark.parametrize("activation, depth", [("relu", 20), ("leaky_relu", 10)])
def test_init_only_runs_of_healthy_networks_are_healthy(compose_cfg, tmp_path, activation, depth):
    """train.epochs=0 records the initialization only: He-initialized ReLU at depth 20 and leaky
    ReLU at depth 10 are textbook-healthy, and without a step there is no budget and no training to
    judge (trainability n/a, as for a recurrent run: it neither trained nor stalled)."""
    tags, table = job(compose_cfg, tmp_path, f"activation={activation}", "init=he_uniform",
                      f"model.depth={depth}", "train.epochs=0")
    assert tags["pathology_init"] == tags["pathology_final"] == "none"
    assert tags["budget_init"] == tags["budget_final"] == tags["trainability"] == "n/a"
    assert set(table["flag"]) == set(diagnosis.FLAGS) and set(table["step"]) == {0}
    assert len(table) == depth * len(diagnosis.FLAGS)  # step 0 is both init and last: written once


def test_the_trap_is_vanishing_at_init_whatever_the_optimizer(compose_cfg, tmp_path):
    for optimizer in ("sgd", "momentum", "adagrad", "adadelta", "adam"):
        tags, _ = job(compose_cfg, tmp_path, "activation=relu", "init=uniform", "model.depth=50",
                      f"optimizer={optimizer}", "train.epochs=0")
        assert "vanishing" in tags["pathology_init"].split(","), optimizer


def test_same_weights_under_two_optimizers_give_one_pathology_init(compose_cfg, tmp_path):
    """relu + uniform at depth 4 was vanishing under sgd, none under adagrad and exploding under
    adadelta; the same seed gives the same weights at step 0, so one verdict."""
    found = {}
    for optimizer in ("sgd", "momentum", "adagrad", "adadelta"):
        tags, table = job(compose_cfg, tmp_path, "activation=relu", "init=uniform", "model.depth=4",
                          f"optimizer={optimizer}", "train.epochs=1")
        found[optimizer] = tags["pathology_init"]
        init = table[(table["step"] == 0) & table["flag"].isin(diagnosis.FLAGS)]
        found[optimizer + " layers"] = tuple(init.sort_values(["flag", "layer"])["raised"])
        assert tags["budget_init"] in ("none", "frozen")
    assert len({found[o] for o in ("sgd", "momentum", "adagrad", "adadelta")}) == 1, found
    assert len({found[o + " layers"] for o in ("sgd", "momentum", "adagrad", "adadelta")}) == 1


def test_frozen_is_raised_by_a_budget_that_cannot_move_the_layers(compose_cfg, tmp_path):
    # ReLU + uniform at depth 50 under one epoch of sgd: gradients of ~1e-20 move nothing
    tags, table = job(compose_cfg, tmp_path, "activation=relu", "init=uniform", "model.depth=50",
                      "optimizer=sgd", "optimizer.lr=0.05", "train.epochs=1")
    assert tags["budget_init"] == "frozen"
    frozen = table[(table["step"] == 0) & (table["flag"] == "frozen")]
    assert len(frozen) == 50 and frozen["raised"].all()
    # He + ReLU at depth 3 under adam: every layer moves
    tags, table = job(compose_cfg, tmp_path, "activation=relu", "init=he_uniform", "model.depth=3",
                      "optimizer=adam", "train.epochs=1")
    assert tags["budget_init"] == "none" and tags["pathology_init"] == "none"
    assert not table[table["flag"] == "frozen"]["raised"].any() and len(table[table["flag"] == "frozen"]) == 2 * 3


def test_the_budget_uses_the_runs_own_rule_and_eps(compose_cfg, tmp_path):
    """Adagrad's eps is the run's (1e-10 by default): an eps of 1 divides every step by ~1 + 1/|g|."""
    plain, _ = job(compose_cfg, tmp_path, "activation=tanh", "init=xavier_uniform", "model.depth=3",
                   "optimizer=adagrad", "train.epochs=1")
    assert plain["budget_init"] == "none"
    slowed, _ = job(compose_cfg, tmp_path, "activation=tanh", "init=xavier_uniform", "model.depth=3",
                    "optimizer=adagrad", "optimizer.eps=1000.0", "train.epochs=1")
    assert slowed["budget_init"] == "frozen" and slowed["pathology_init"] == plain["pathology_init"]
