"""sync.metrics_of: what a run's record becomes in MLflow, against values computed here from the
record's tables (zero, negative and non-finite statistics have no log10: left out and counted)."""
import math

import numpy as np
import pandas as pd
import pytest

from experiments import sync


def _record(n_layers=3):
    """layer_stats at steps 0 and 10 (grad_norm with a zero, a NaN and an inf), and scalars."""
    rows = []
    values = {0: {"grad_norm": [1e-40, 0.0, 2.0], "weight_norm": [4.0, 5.0, 0.0], "delta_ms": [1e-3, 2e-3, 3e-3],
                  "act_var": [0.5, -1.0, 2.0]},
              10: {"grad_norm": [math.nan, 3.0, math.inf], "weight_norm": [4.0, 5.0, 6.0], "delta_ms": [1.0, 2.0, 3.0],
                   "act_var": [0.25, 0.5, 1.0]}}
    for step, stats in values.items():
        for stat, per_layer in stats.items():
            rows += [(step, layer, stat, v) for layer, v in enumerate(per_layer, start=1)]
    stats = pd.DataFrame(rows, columns=["step", "layer", "stat", "value"])
    scalars = pd.DataFrame({"step": [0, 10], "name": ["loss/train"] * 2, "value": [2.3, 1.1], "timestamp": [1000, 2000]})
    return stats, scalars


CFG = {"model": {"depth": 2, "width": 8}, "seed": 3}


def _by_key(metrics):
    out = {}
    for m in metrics:
        out.setdefault(m.key, {})[m.step] = m.value
    return out


def test_profiles_are_log10_by_layer_and_skip_values_without_a_log():
    stats, scalars = _record()
    metrics, tags = sync.metrics_of(scalars, stats, CFG)
    got, tags = _by_key(metrics), {t.key: t.value for t in tags}
    assert got["profile_init/log10_grad_norm"] == {1: pytest.approx(-40.0, rel=1e-15), 3: pytest.approx(math.log10(2.0))}
    assert got["profile_final/log10_grad_norm"] == {2: pytest.approx(math.log10(3.0))}
    # the relative gradient: ||dL/dW_l|| / ||W_l||, left out where either has no finite log10
    assert got["profile_init/log10_grad_norm_rel"] == {1: pytest.approx(math.log10(1e-40 / 4.0))}
    assert got["profile_final/log10_grad_norm_rel"] == {2: pytest.approx(math.log10(3.0 / 5.0))}
    assert got["profile_init/log10_act_var"] == {1: pytest.approx(math.log10(0.5)), 3: pytest.approx(math.log10(2.0))}
    assert set(got["profile_final/log10_delta_ms"]) == {1, 2, 3}
    # skipped at init: grad_norm 1 (the zero), rel 2 (zero gradient, zero weight norm), act_var 1 (negative)
    assert tags["profile_init.skipped"] == "4"
    # at the end: grad_norm 2 (NaN, inf), rel 2
    assert tags["profile_final.skipped"] == "4"


def test_series_are_log10_at_the_first_and_last_layer_only():
    stats, scalars = _record()
    metrics, tags = sync.metrics_of(scalars, stats, CFG)
    got, tags = _by_key(metrics), {t.key: t.value for t in tags}
    assert got["log10_grad_norm/layer_01"] == {0: pytest.approx(-40.0, rel=1e-15)}  # step 10 is NaN
    assert got["log10_grad_norm/layer_03"] == {0: pytest.approx(math.log10(2.0))}   # step 10 is inf
    assert not any(k.startswith(("log10_grad_norm/layer_02", "grad_norm/")) for k in got)
    assert tags["series.skipped"] == "2"
    assert got["loss/train"] == {0: 2.3, 10: 1.1}
    assert {k: got[k] for k in ("depth", "width", "seed")} == {"depth": {0: 2.0}, "width": {0: 8.0}, "seed": {0: 3.0}}
    assert got["log10_grad_ratio_init"] == {0: pytest.approx(-40.0 - math.log10(2.0))}
    assert all(np.isfinite(m.value) for m in metrics)


def test_an_upload_cut_short_after_the_images_does_not_log_them_twice(tmp_path, compose_cfg, monkeypatch):
    """`make sync` of a record whose upload stopped after its images (the run left RUNNING, the
    record unsynced) completes the run without a second copy of each image."""
    from mlflow.tracking import MlflowClient

    from experiments import record, runner
    for key in ("GRADPATH_EXPERIMENT_ID", "GRADPATH_PARENT_RUN_ID", "GRADPATH_SWEEP_ID", "GRADPATH_SKIP_FILE",
                "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_cfg("model.depth=2", "model.width=8", "train.epochs=1", "train.batch_size=256",
                      "train.log_every=5", "train.probe_size=32", f"tracking.uri={uri}")
    out = tmp_path / "run"
    assert runner.run_job(cfg, out) == "ok"
    status = record.read_status(out)
    client = MlflowClient(tracking_uri=uri)
    images = [a.path for a in client.list_artifacts(status["run_id"], "images")]
    assert images and status["images_logged"] is True
    status["synced"] = False
    record.write_status(out, status)
    client.update_run(status["run_id"], status="RUNNING")
    assert sync.upload(out)
    assert sorted(a.path for a in client.list_artifacts(status["run_id"], "images")) == sorted(images)
    assert client.get_run(status["run_id"]).info.status == "FINISHED"
    assert record.read_status(out)["synced"] is True


def test_a_parent_the_launcher_could_not_close_is_closed_by_sync(tmp_path, monkeypatch, capsys):
    """The store is down when the sweep ends: the launcher warns in one line and writes parent.json in
    the sweep directory; sync closes that parent run later, and only for the same launch."""
    import json

    from mlflow.tracking import MlflowClient

    from experiments import record, sweep, tracking
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    sweep_dir = tmp_path / "multirun" / "2026-01-01" / "00-00-00-000000"
    monkeypatch.setenv(record.ENV_SWEEP_DIR, str(sweep_dir))
    runs = {}
    for name in ("closed_by_sync", "relaunched"):
        runs[name] = sweep.parent_run(client, exp, name, "study", [], launched="1000")
        plan = sweep.Plan(jobs=[], uri=uri, experiment_id=exp, sweep_id=name, parent_run_id=runs[name],
                          launched="1000")

        def down(_uri):
            raise ConnectionError("connection refused")
        monkeypatch.setattr(tracking, "client", down)
        sweep.finish_parent(plan, "FINISHED")  # no traceback
        monkeypatch.undo()
        monkeypatch.setenv(record.ENV_SWEEP_DIR, str(sweep_dir))
        pending = json.loads((sweep_dir / record.PARENT_FILE).read_text())
        assert pending == {"tracking_uri": uri, "run_id": runs[name], "status": "FINISHED", "launched_ms": "1000",
                           "synced": False}
        assert "run `make sync` to close it" in capsys.readouterr().err
        if name == "relaunched":  # the grid was launched again meanwhile: that launch owns the parent now
            client.set_tag(runs[name], record.LAUNCHED_TAG, "2000")
        assert client.get_run(runs[name]).info.status == "RUNNING"
        assert sync.main([str(tmp_path / "multirun")]) == 0
        assert "1 sweep parent runs closed" in capsys.readouterr().out
        assert json.loads((sweep_dir / record.PARENT_FILE).read_text())["synced"] is True
    assert client.get_run(runs["closed_by_sync"]).info.status == "FINISHED"
    assert client.get_run(runs["relaunched"]).info.status == "RUNNING"
    assert sync.main([str(tmp_path / "multirun")]) == 0  # a closed record is not closed twice
    assert "0 sweep parent runs closed" in capsys.readouterr().out
