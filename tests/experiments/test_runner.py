"""experiments.runner: freeze_imports (the heavy modules are imported once and out of the collector's
reach) and a recurrent job's record."""
import subprocess
import sys

import pytest

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


# ------------------------------------------------------------------ a recurrent job, in process
def test_recurrent_job_records_time_axis_grad_norms_and_flags_through_time(tmp_path, compose_cfg):
    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from experiments import datasets, record, runner
    from nncore.optimizers import global_norm
    from nncore.probes_recurrent import STATS, layer_and_time
    from nncore.rng import generator

    uri = f"sqlite:///{tmp_path}/m.db"
    cfg = compose_cfg("arch=lstm", "data=adding", "data.length=6", "data.n_train=40", "data.n_val=20",
                      "model.width=5", "model.depth=2", "init=pytorch", "model.forget_bias=1", "optimizer=adam",
                      "train.clip_norm=0.05", "train.epochs=2", "train.batch_size=16", "train.log_every=2",
                      "train.probe_size=16", f"tracking.uri={uri}")
    assert runner.run_job(cfg, tmp_path / "job") == "ok"
    status = record.read_status(tmp_path / "job")
    stats = pd.read_parquet(tmp_path / "job" / record.LAYER_STATS_FILE)
    k, t = layer_and_time(stats["layer"].to_numpy())
    assert set(k) == {1, 2} and set(t) == set(range(1, 7))
    assert set(stats["stat"]) == set(STATS["lstm"])
    # every (step, stat) has all 2 x 6 (layer, time) cells exactly once
    assert (stats.groupby(["step", "stat"]).size() == 12).all()
    scalars = pd.read_parquet(tmp_path / "job" / record.SCALARS_FILE)
    assert not scalars["name"].isin([record.ACC_TRAIN, record.ACC_VAL]).any()   # a regression has no accuracy
    norms = scalars[scalars["name"] == record.GRAD_NORM_TRAIN].sort_values("step")
    assert list(norms["step"]) == list(range(1, status["steps"] + 1)) and status["steps"] == 6
    # update 1's norm before clipping, recomputed here from the same seeded network and first batch
    data = datasets.load(cfg.data, cfg.seed)
    net, _ = runner.build(cfg, data)
    first = generator(cfg.seed, "shuffle").permutation(40)[:16]
    _, grads = net.loss_and_grads(data.X_train[first], data.y_train[first])
    assert norms["value"].iloc[0] == pytest.approx(global_norm(grads), rel=1e-12)
    assert status[record.CLIPPED_FRACTION] == np.mean(norms["value"] > 0.05)
    flags = pd.read_parquet(tmp_path / "job" / record.DIAGNOSIS_FILE)
    assert set(flags["flag"]) == {"vanishing", "exploding", "saturated", "dead"} and len(flags) == 2 * 4 * 12
    # the flags at init are nncore's, from the probe's arrays as the job stored them
    from nncore import diagnosis
    at_init = stats[stats["step"] == 0]
    arrays = {stat: at_init[at_init["stat"] == stat].sort_values("layer")["value"].to_numpy().reshape(2, 6)
              for stat in ("delta_ms", "saturation", "dead_frac")}
    expected = diagnosis.diagnose_through_time(arrays)
    for flag, raised in expected.items():
        rows = flags[(flags["step"] == 0) & (flags["flag"] == flag)].sort_values("layer")
        assert list(rows["raised"]) == list(raised.ravel()), flag
    assert status["pathology_init"] == diagnosis.flag_set(expected)
    assert status["trainability"] in ("trained", "stalled") and float(status["baseline_mse"]) > 0
    client = MlflowClient(uri)
    run = client.get_run(status["run_id"])
    tags = run.data.tags
    assert (tags["cell"], tags["seq_len"], tags["recurrent_init"], tags["config_hash"]) == (
        "lstm", "6", "same", status["config_hash"])
    profile = client.get_metric_history(run.info.run_id, "profile_init/log10_delta_ms")
    top = stats[(stats["step"] == 0) & (stats["stat"] == "delta_ms") & (stats["layer"] // 100000 == 2)]
    expected = {int(code % 100000): np.log10(v) for code, v in zip(top["layer"], top["value"]) if v > 0}
    assert {m.step: m.value for m in profile} == pytest.approx(expected, rel=1e-12)
    assert len(client.get_metric_history(run.info.run_id, record.GRAD_NORM_TRAIN)) == 6
    assert run.data.metrics[record.CLIPPED_FRACTION] == status[record.CLIPPED_FRACTION]
    assert run.data.metrics["seq_len"] == 6


def test_a_job_records_the_jacobian_probes_at_init_and_at_the_end(tmp_path, compose_cfg):
    import pandas as pd

    from experiments import record, runner
    tiny = ["model.depth=2", "model.width=8", "train.epochs=1", "train.batch_size=256", "train.log_every=5",
            "train.probe_size=32", "train.histogram_snapshots=0", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"]
    cfg = compose_cfg(*tiny)
    out = tmp_path / "run"
    assert runner.run_job(cfg, out, overrides=tiny) == "ok"
    scalars = pd.read_parquet(out / record.SCALARS_FILE)
    last = int(scalars["step"].max())
    for key in record.JACOBIAN_SCALARS.values():
        assert sorted(scalars[scalars["name"] == key]["step"]) == [0, last]
    stats = pd.read_parquet(out / record.LAYER_STATS_FILE)
    sv = stats[stats["stat"] == record.LAYER_JACOBIAN_STAT]
    assert sorted(sv["step"].unique()) == [0, last] and sorted(sv["layer"].unique()) == [1, 2, 3]
    hists = pd.read_parquet(out / record.HISTOGRAMS_FILE)
    jac = hists[hists["kind"] == record.JACOBIAN_HISTOGRAM]
    assert set(jac["layer"]) == {2} and sorted(jac["step"].unique()) == [0, last]
    # each histogram counts the squared singular values of JACOBIAN_INPUTS 8 x 64 Jacobians
    assert set(jac.groupby("step")["count"].sum()) == {8 * runner.probes.JACOBIAN_INPUTS}


def test_recurrent_init_only_job_writes_its_flags_once(tmp_path, compose_cfg):
    """train.epochs=0: step 0 is the first and the last probe; diagnosis.parquet holds its flags once
    (each of the 1 x 4 (layer, time) cells per flag), and the run has no verdicts but its pathology."""
    import pandas as pd

    from experiments import record, runner
    cfg = compose_cfg("arch=rnn", "data=adding", "data.length=4", "data.n_train=8", "data.n_val=8",
                      "model.width=3", "init=pytorch", "train.epochs=0", "train.probe_size=8",
                      f"tracking.uri=sqlite:///{tmp_path}/m.db")
    assert runner.run_job(cfg, tmp_path / "job") == "ok"
    flags = pd.read_parquet(tmp_path / "job" / record.DIAGNOSIS_FILE)
    assert set(flags["step"]) == {0} and len(flags) == 4 * 4
    assert not flags.duplicated(["step", "layer", "flag"]).any()
    status = record.read_status(tmp_path / "job")
    assert status["trainability"] == status["budget_init"] == "n/a"
