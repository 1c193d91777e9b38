"""analysis.recurrent: the recurrent runs' selection, profiles against time and per-step ratio, on
tables built here."""
import numpy as np
import pandas as pd
import pytest

from analysis import recurrent
from analysis.load import Frames
from nncore.probes_recurrent import time_layer


def _frames():
    runs = pd.DataFrame({"run_id": ["m", "r"], "run_name": ["mlp", "rnn"], "cell": ["none", "rnn"],
                         "pathology_init": ["none", "vanishing"], "pathology_final": ["none", "none"],
                         "trainability": ["trained", "trained"]})
    T, ratio = 30, 0.7
    t = np.arange(1, T + 1)
    rows = [{"run_id": "r", "step": 0, "layer": int(time_layer(k, s)), "stat": "delta_ms",
             "value": (ratio ** 2) ** (T - s) * (1 if k == 2 else 5)} for k in (1, 2) for s in t]
    rows += [{"run_id": "r", "step": 9, "layer": int(time_layer(2, s)), "stat": "delta_ms", "value": 1.0} for s in t]
    rows += [{"run_id": "m", "step": 0, "layer": layer, "stat": "delta_ms", "value": 1.0} for layer in (1, 2)]
    stats = pd.DataFrame(rows)
    empty = pd.DataFrame({"run_id": [], "step": [], "name": [], "value": []})
    return Frames(runs=runs, layer_stats=stats, histograms=empty.rename(columns={"name": "kind"}), scalars=empty)


def test_split_separates_the_recurrent_runs_with_their_verdicts():
    mlp, rec = recurrent.split(_frames())
    assert list(mlp.runs["run_id"]) == ["m"] and set(mlp.layer_stats["run_id"]) == {"m"}
    assert list(rec.runs["run_id"]) == ["r"] and set(rec.layer_stats["run_id"]) == {"r"}
    assert (rec.runs["pathology_init"].iloc[0], rec.runs["trainability"].iloc[0]) == ("vanishing", "trained")


def test_time_profile_decodes_layer_and_step_and_defaults_to_the_top_layer_at_init():
    frames = _frames()
    t, values = recurrent.time_profile(frames.layer_stats, "r", "delta_ms")
    np.testing.assert_array_equal(t, np.arange(1, 31))
    assert values[-1] == 1.0 and values[0] == pytest.approx(0.49 ** 29)
    _, bottom = recurrent.time_profile(frames.layer_stats, "r", "delta_ms", layer=1)
    assert bottom[-1] == 5.0
    _, last = recurrent.time_profile(frames.layer_stats, "r", "delta_ms", step=None)
    np.testing.assert_array_equal(last, np.ones(30))
    assert recurrent.time_profile(frames.layer_stats, "r", "act_var")[0].size == 0


def test_per_step_ratio_recovers_a_geometric_profile():
    t = np.arange(1, 101)
    for ratio in (0.3, 0.9, 1.0, 1.3):
        # a transient in the first half does not enter the fit
        delta = ratio ** (2.0 * (100 - t)) * np.where(t < 40, 7.0, 1.0)
        assert recurrent.per_step_ratio(t, delta) == pytest.approx(ratio, rel=1e-9)
    assert np.isnan(recurrent.per_step_ratio(t, np.zeros(100)))
    assert np.isnan(recurrent.per_step_ratio([], []))


@pytest.mark.parametrize("run, label", [
    ({"cell": "lstm", "forget_bias": 1.0, "init": "pytorch"}, "LSTM fb=1"),
    ({"cell": "gru", "forget_bias": 0.0, "init": "pytorch"}, "GRU"),
    ({"cell": "rnn", "activation": "relu", "recurrent_init": "identity", "init": "normal", "sigma_w": 0.1}, "IRNN"),
    ({"cell": "rnn", "activation": "tanh", "recurrent_init": "same", "init": "normal", "sigma_w": 1.5},
     "tanh, sigma_w=1.5"),
    ({"cell": "rnn", "activation": "tanh", "recurrent_init": "orthogonal", "init": "pytorch"},
     "tanh, pytorch, W_hh orthogonal"),
])
def test_net_label(run, label):
    assert recurrent.net_label(pd.Series(run)) == label


def test_no_theory_line_for_gated_cells_identity_or_stacked_layers():
    base = {"dataset": "adding", "seq_len": 10.0, "n_in": 2, "width": 8, "activation": "tanh", "init": "pytorch",
            "recurrent_init": "same", "depth": 1, "sigma_w": 1.0, "gain": 1.0, "sigma_b": 0.0, "recurrent_gain": 1.0}
    assert isinstance(recurrent.theory(pd.Series({**base, "cell": "lstm"})), str)
    assert "identity" in recurrent.theory(pd.Series({**base, "cell": "rnn", "recurrent_init": "identity"}))
    assert "stacked" in recurrent.theory(pd.Series({**base, "cell": "rnn", "depth": 2}))
    prediction = recurrent.theory(pd.Series({**base, "cell": "rnn"}))
    assert prediction.shape == (10,) and prediction[-1] == 1.0 and (np.diff(prediction) > 0).all()


def test_no_theory_line_when_w_hh_sigma_w_was_not_logged():
    """A normal W_hh's sigma_w is never guessed (it was 1.0 by default): without it there is no line,
    and the reason says so; with it, the line follows it."""
    base = {"dataset": "adding", "seq_len": 10.0, "n_in": 2, "width": 8, "activation": "tanh", "init": "pytorch",
            "recurrent_init": "normal", "depth": 1, "sigma_b": 0.0, "cell": "rnn"}
    reason = recurrent.theory(pd.Series(base))
    assert isinstance(reason, str) and "did not log" in reason and "sigma_w" in reason
    small, large = (recurrent.theory(pd.Series({**base, "sigma_w": s})) for s in (0.5, 3.0))
    assert small[0] < large[0]  # a smaller sigma_w vanishes faster toward t = 1
