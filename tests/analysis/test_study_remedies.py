"""The remedies study's report section on synthetic runs whose per-layer statistics are built
here with known rates, so every number the section prints can be checked."""
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis import study_remedies as remedies
from analysis.load import LAYER_STATS_COLUMNS, RUN_COLUMNS, SCALAR_COLUMNS, Frames, empty_frame
from analysis.studies import study_section
from synthetic_runs import quietly

DEPTH, WIDTH = 10, 64
ARCHS = {"plain": ("none", np.nan), "res": ("none", 1.0), "res0.141": ("none", 0.1414),
         "bn": ("batch", np.nan), "ln": ("layer", np.nan), "res-ln": ("layer", 1.0)}
ACTS, INITS = ("sigmoid", "relu"), ("xavier_uniform", "he_uniform")
BN_RATE = 1.3   # the synthetic BatchNorm runs' per-layer error growth toward the input
RES_GROWTH = 2.0  # the synthetic residual runs' per-layer growth of E[a^2]


def _run_stats(run_id, arch, step):
    layers = np.arange(1, DEPTH + 2)
    L = DEPTH + 1
    if arch == "bn":
        delta = 0.01 * BN_RATE ** (L - layers)
    else:
        delta = 0.01 * 0.9 ** (L - layers)
    ms = RES_GROWTH ** (layers - 1) if arch.startswith("res") else np.full(L, 0.5)
    act_mean = 0.5 * np.sqrt(ms)
    values = {"delta_ms": delta, "grad_norm": np.sqrt(delta), "act_mean": act_mean,
              "act_var": ms - act_mean ** 2, "preact_var": np.full(L, 1.0)}
    rows = [pd.DataFrame({"run_id": run_id, "step": step, "layer": layers, "stat": stat, "value": v})
            for stat, v in values.items()]
    return pd.concat(rows)


def remedy_frames(with_tags=True):
    runs, stats = [], []
    for arch, (norm, scale) in ARCHS.items():
        for act in ACTS:
            for init in INITS:
                run_id = f"{act}-{init}-{arch}"
                plain_sick = arch == "plain" and act == "sigmoid"
                row = {"run_id": run_id, "run_name": run_id, "sweep": "s", "activation": act, "init": init,
                       "optimizer": "adam", "depth": DEPTH, "width": WIDTH, "dataset": "digits", "seed": 0,
                       "lr": 1e-3, "sigma_w": 1.0, "sigma_b": 0.0, "gain": 1.0, "alpha": 0.01, "n_in": 64.0,
                       "n_out": 10.0, "outcome": "ok", "status": "FINISHED", "loss/train": 0.5, "loss/val": 0.6,
                       "acc/train": 0.9, "acc/val": 0.1 if plain_sick else 0.9, "diverged_step": np.nan,
                       "arch": arch, "norm": norm, "residual_scale": scale}
                if with_tags:
                    row["pathology_init"] = ("vanishing" if plain_sick else
                                             "exploding" if arch == "bn" and act == "relu" else "none")
                    row["pathology_final"] = "vanishing" if plain_sick else "none"
                    row["trainability"] = "stalled" if plain_sick else "trained"
                    row["budget_init"] = row["budget_final"] = "none"  # the job's diagnosis
                runs.append(row)
                stats += [_run_stats(run_id, arch, 0), _run_stats(run_id, arch, 100)]
    runs = pd.DataFrame(runs)
    runs = runs.astype({k: v for k, v in RUN_COLUMNS.items() if k in runs.columns})
    return Frames(runs=runs, layer_stats=pd.concat(stats, ignore_index=True).astype(LAYER_STATS_COLUMNS),
                  histograms=pd.DataFrame(), scalars=empty_frame(SCALAR_COLUMNS), experiment="x", sweep="s")


def test_fitted_rate_recovers_a_geometric_profile():
    layers = np.arange(1, 12)
    assert remedies.fitted_rate(3.0 * 1.467 ** (11 - layers), 2, 9) == pytest.approx(1.467, rel=1e-12)
    assert math.isnan(remedies.fitted_rate(np.full(11, np.nan), 2, 9))


def test_batchnorm_rates_are_measured_from_the_runs():
    frames = remedy_frames()
    table = remedies.batchnorm_rates(frames.layer_stats, frames.runs)
    assert len(table) == len(ACTS) * len(INITS)
    assert set(table["measured rate"]) == {f"{BN_RATE:.3f}"}
    relu = table[table["activation"] == "relu"].iloc[0]
    assert relu["lambda (theory)"] == f"{math.pi / (math.pi - 1):.3f}"
    assert relu["error"] == f"{100 * (BN_RATE / (math.pi / (math.pi - 1)) - 1):+.1f}%"
    assert relu["growth over the stack"] == f"{BN_RATE ** (DEPTH - 1):.3g}"


def test_residual_growth_measured_and_predicted():
    frames = remedy_frames()
    table = remedies.residual_growth(frames.layer_stats, frames.runs)
    # named from the tags: 0.1414 is 1/sqrt(50), not 1/sqrt(DEPTH) of these depth-10 runs
    assert list(dict.fromkeys(table["architecture"])) == ["residual (scale 1)", "residual (scale 0.141)",
                                                          "residual + LayerNorm"]
    assert set(table["E[a^2] growth, measured"]) == {f"{RES_GROWTH ** (DEPTH - 1):.3g}"}
    assert set(table["error growth, measured"]) == {f"{0.9 ** (DEPTH - 1):.3g}"}
    # the theory column is the mean-field recursion at the run's sizes (relu, He, scale 1: p grows > 2x a layer)
    row = table[(table["activation"] == "relu") & (table["init"] == "he_uniform")
                & (table["architecture"] == "residual (scale 1)")].iloc[0]
    assert float(row["E[a^2] growth, theory"]) > 2.0 ** (DEPTH - 1)
    assert float(row["error growth, theory"]) == pytest.approx(2.0 ** (DEPTH - 1), rel=1e-3)  # 1 + s^2 sigma_w^2 / 2 = 2 a layer


def test_prediction_per_architecture():
    frames = remedy_frames()
    runs = frames.runs.set_index("run_id")
    for arch in ARCHS:
        run = runs.loc[f"relu-he_uniform-{arch}"].to_dict()
        measured = remedies.init_profiles(frames.layer_stats, f"relu-he_uniform-{arch}")
        th = remedies.prediction(run, measured)
        assert th is not None and len(th["delta_ms"]) == DEPTH + 1
        assert th["delta_ms"][-1] == pytest.approx(measured["delta_ms"][-1])  # anchored at the output layer
    bn = remedies.prediction(runs.loc["relu-he_uniform-bn"].to_dict(),
                             remedies.init_profiles(frames.layer_stats, "relu-he_uniform-bn"))
    chi = bn["delta_ms"][1:DEPTH - 1] / bn["delta_ms"][2:DEPTH]
    np.testing.assert_allclose(chi, math.pi / (math.pi - 1), rtol=1e-3)  # eps = 1e-5 shifts it slightly


def test_cure_table_from_tags():
    frames = remedy_frames()
    table, pathologies = remedies.cure_table(frames.runs)
    assert pathologies == ["vanishing"]  # the plain runs' pathologies at init only
    cells = dict(zip(table["architecture"], table["vanishing"]))
    assert cells["plain"] == "vanishing at init 2/2, trained 0/2"
    assert cells["BatchNorm"] == "vanishing at init 0/2, trained 2/2 (cured)"


def test_section_with_and_without_tags(tmp_path, monkeypatch):
    text = "\n".join(quietly(study_section, "remedies", remedy_frames(), tmp_path / "figures"))
    assert (tmp_path / "figures" / "remedies_profiles.png").exists()
    for needle in ("## Remedies", "### Trainability", "### BatchNorm: the gradient explosion at init",
                   f"| BatchNorm | relu | he_uniform | {BN_RATE:.3f} | 1.467 |", "### Which architecture cured",
                   "vanishing at init 0/2, trained 2/2 (cured)", "none -> none, trained (acc 0.90)",
                   "vanishing -> vanishing, stalled (acc 0.10)",
                   f"- relu: measured rate {100 * (BN_RATE / (math.pi / (math.pi - 1)) - 1):+.1f}% from lambda = 1.467 "
                   f"over 2 run(s).", "- The error's growth is within a factor 10 of theory in every run."):
        assert needle in text, needle
    # runs logged before the job's diagnosis, whose statistics lack what the diagnosis needs
    text = "\n".join(quietly(study_section, "remedies", remedy_frames(with_tags=False), tmp_path / "f2"))
    assert "carry no diagnosis tags" in text and "Which architecture cured" not in text
    assert "0.10 (ok)" in text


def test_architectures_are_named_and_ordered_from_the_tags_not_the_label():
    """norm, residual_scale (NaN for a plain stack) and depth name an architecture, whatever its
    arch label says; 1/sqrt(depth) is recognised at the run's depth."""
    rows = [("x1", "layer", 1.0, 50), ("x2", "none", np.nan, 50), ("x3", "batch", np.nan, 50),
            ("x4", "none", 1 / math.sqrt(50), 50), ("x5", "none", 1.0, 50), ("x6", "layer", np.nan, 50),
            ("x7", "none", 0.5, 50)]
    runs = pd.DataFrame(rows, columns=["arch", "norm", "residual_scale", "depth"])
    names = [remedies.arch_name(runs, arch) for arch in remedies.arch_order(runs)]
    assert names == ["plain", "residual (scale 1)", "residual (scale 0.5)", "residual (scale 1/sqrt(50))",
                     "BatchNorm", "LayerNorm", "residual + LayerNorm"]


def test_runs_logged_before_the_arch_tags_are_plain_networks():
    frames = remedy_frames()
    frames = replace(frames, runs=frames.runs.drop(columns=["arch", "norm", "residual_scale"]))
    runs = remedies.select_runs(frames)
    assert set(runs["arch"]) == {"plain"} and set(runs["norm"]) == {"none"} and runs["residual_scale"].isna().all()
    assert remedies.has_tags(runs)           # the diagnosis tags are kept
    assert remedies.observe_batchnorm(frames.layer_stats, runs)[-2:] == ["No BatchNorm runs.", ""]
    assert remedies.observe_residual(frames.layer_stats, runs)[-2:] == ["No residual runs with a theory.", ""]
