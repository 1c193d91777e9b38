"""Theory overlays: predictions built from a run's step-0 statistics agree with a real network."""
import numpy as np
import pandas as pd
import pytest

from analysis import theory
from nncore import MLP
from nncore import theory_finite_width as fw


def _frames(activation, init, depth=8, width=256, seed=0, activation_params=None, logged=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(256, width))
    y = rng.integers(0, 10, size=256)
    net = MLP(width, [width] * depth, 10, activation=activation, init=init, seed=seed,
              activation_params=activation_params)
    stats = net.probe(X, y)
    run_id = f"{activation}-{init}"
    layer_stats = pd.concat([pd.DataFrame({"run_id": run_id, "step": 0, "layer": np.arange(1, depth + 2),
                                           "stat": k, "value": v}) for k, v in stats.items()])
    runs = pd.DataFrame([{"run_id": run_id, "activation": activation, "init": init, "depth": depth,
                          "width": width, "sigma_w": 1.0, "sigma_b": 0.0, "gain": 1.0, "alpha": 0.01,
                          "n_in": width, "n_out": 10, **(logged or {})}])
    return layer_stats, runs, stats


@pytest.mark.parametrize("activation,init", [("tanh", "xavier_uniform"), ("sigmoid", "uniform"),
                                             ("relu", "he_uniform"), ("tanh", "uniform"),
                                             ("identity", "lecun_normal")])
def test_predictions_follow_a_real_network(activation, init):
    layer_stats, runs, stats = _frames(activation, init)
    frame = theory.theory_frame(layer_stats, runs)
    bands = {f"{stat}:{key}" for stat in ("preact_var", "act_var") for key in ("median", "low", "high")}
    assert set(frame["stat"]) == {"preact_var", "act_var", "delta_ms", "grad_norm"} | (
        bands if activation in theory.band_activations() else set())  # the band: relu and leaky_relu only
    if activation in theory.band_activations():
        low, high = (frame[frame["stat"] == f"preact_var:{key}"].sort_values("layer")["value"].to_numpy()
                     for key in ("low", "high"))
        inside = (stats["preact_var"] >= low) & (stats["preact_var"] <= high)
        assert inside.mean() >= 0.7            # a 90% band per layer; the layers are correlated
    q = frame[frame["stat"] == "preact_var"].sort_values("layer")["value"].to_numpy()
    hidden = slice(0, 8)
    np.testing.assert_allclose(q[hidden], stats["preact_var"][hidden], rtol=0.25)
    d = frame[frame["stat"] == "delta_ms"].sort_values("layer")["value"].to_numpy()
    assert d[-1] == pytest.approx(stats["delta_ms"][-1])
    # per-layer log slope of the error within 0.1 of the measured one
    slope = lambda v: np.polyfit(np.arange(8), np.log(v[hidden]), 1)[0]
    assert abs(slope(d) - slope(stats["delta_ms"])) < 0.1


def test_activation_parameters_come_from_the_run():
    """leaky_relu with alpha 0.6 logged: the prediction uses that slope (E[phi'^2] = (1 + 0.6^2)/2,
    far from the default's), and matches the network that had it."""
    run = pd.Series({"activation": "leaky_relu", "alpha": 0.6})
    assert theory.activation_of(run).alpha == 0.6
    assert theory.activation_of(pd.Series({"activation": "leaky_relu", "alpha": np.nan})).alpha == 0.01
    assert theory.activation_of(pd.Series({"activation": "tanh", "alpha": 0.6})).param_values() == {}
    layer_stats, runs, stats = _frames("leaky_relu", "he_normal", activation_params={"alpha": 0.6},
                                       logged={"alpha": 0.6})
    frame = theory.theory_frame(layer_stats, runs)
    q = frame[frame["stat"] == "preact_var"].sort_values("layer")["value"].to_numpy()
    np.testing.assert_allclose(q[:8], stats["preact_var"][:8], rtol=0.25)
    growth = q[7] / q[0]  # sigma_w^2 (1 + alpha^2)/2 = 1.36 per layer with alpha 0.6; 1.0001 at the default
    assert growth == pytest.approx(1.36 ** 7, rel=1e-9)


def test_comparison_table_and_section_change_with_the_data():
    a = _frames("tanh", "uniform")
    b = _frames("sigmoid", "uniform")
    table = theory.comparison_table(*a[:2])
    assert len(table) == 1 and table["slope_rel_err"].iloc[0] < 0.1
    text_a = "\n".join(theory.markdown_section(*a[:2]))
    text_b = "\n".join(theory.markdown_section(*b[:2]))
    assert "| tanh | uniform |" in text_a and "| sigmoid | uniform |" in text_b and text_a != text_b


def test_no_prediction_for_constant_init_or_empty_frames():
    layer_stats, runs, _ = _frames("tanh", "uniform")
    runs.loc[:, "init"] = "constant"
    assert theory.theory_frame(layer_stats, runs).empty
    assert theory.markdown_section(layer_stats.iloc[0:0], runs.iloc[0:0]) == []


def test_bands_for_the_nonlinear_piecewise_linear_activations_only():
    """The band describes one input's q: a linear network's batch average fluctuates far less, so
    identity runs get none, though nncore computes the band for it."""
    assert set(theory.band_activations()) == {"relu", "leaky_relu"}
    assert "identity" in fw.supported()


def test_a_run_without_its_sizes_gets_no_theory_and_a_note_not_a_guess():
    """Runs logged before the n_in / n_out tags: their input and output widths are not guessed
    (digits' 64 and 10 were); no prediction, and one note saying what to re-run."""
    layer_stats, runs, _ = _frames("tanh", "xavier_uniform", depth=4, width=32)
    network = theory.network_of(runs.iloc[0])
    assert network.sizes == (32, 32, 32, 32, 32, 10) and network.norm is None and np.isnan(network.residual_scale)
    assert not theory.theory_frame(layer_stats, runs).empty and theory.no_sizes_note(runs) == ""
    old = runs.assign(n_in=np.nan)
    assert theory.network_of(old.iloc[0]) is None
    assert theory.theory_frame(layer_stats, old).empty
    assert theory.no_sizes_note(old) == ("1 run(s) logged no n_in / n_out tags (logged before them): no theory "
                                         "for them; re-run them to have it")
