"""nncore.probes_recurrent: every statistic through time against its definition, computed here
from a forward pass written in the test and from the total dL/dh_t (checked against finite
differences in test_recurrent_cells.py)."""
import numpy as np
import pytest

from nncore import RNN
from nncore.probes_recurrent import STATS, TIME_BASE, layer_and_time, time_layer

B, T, N_IN, H = 5, 7, 3, 4


def _forward(net, X, ref):
    """Per layer: h_0..h_T, and the cell's internals, from torch's equations."""
    sig, out, seq = ref.sigmoid, [], [X[:, t] for t in range(T)]
    for cell in net.cells:
        P = cell.params
        h, c = np.zeros((B, H)), np.zeros((B, H))
        rec = {"h": [h], "a": [], "f": [], "c": [], "z": [], "gate_slopes": []}
        for x in seq:
            gi, gh = x @ P["W_ih"] + P["b_ih"], h @ P["W_hh"] + P["b_hh"]
            if net.cell == "rnn":
                a = gi + gh
                h = ref.phi(net.activation.name, a)
                rec["a"].append(a)
            elif net.cell == "lstm":
                a = gi + gh
                i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
                rec["f"].append(f)
                rec["c"].append(c)
                # slopes relative to each nonlinearity's maximum (sigmoid 1/4, tanh 1)
                rec["gate_slopes"].append(np.concatenate([4 * i * (1 - i), 4 * f * (1 - f), 1 - g * g, 4 * o * (1 - o)], 1))
            else:
                r, z = sig(gi[:, :H] + gh[:, :H]), sig(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = (1 - z) * n + z * h
                rec["z"].append(z)
                rec["gate_slopes"].append(np.concatenate([4 * r * (1 - r), 4 * z * (1 - z), 1 - n * n], 1))
            rec["h"].append(h)
        out.append(rec)
        seq = rec["h"][1:]
    return out


@pytest.mark.parametrize("cell,activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")])
def test_statistics_through_time_follow_their_definitions(ref, cell, activation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(B, T, N_IN)) * 2.0
    y = rng.integers(0, 3, size=B)
    net = RNN(N_IN, H, 3, cell=cell, activation=activation, num_layers=2, seed=3, init="normal",
              init_params={"sigma_w": 2.5}, sigma_b=0.5)
    stats = net.probe(X, y)
    assert set(stats) == set(STATS[cell])
    assert all(v.shape == (2, T) for v in stats.values())
    _, grads = net.loss_and_grads(X, y, deltas=True)
    assert net.probe_loss == pytest.approx(net.loss(X, y), rel=1e-14)
    flat = np.concatenate([g.ravel() for g in grads.parameters()])
    assert net.probe_grad_norm == pytest.approx(np.linalg.norm(flat), rel=1e-12)
    for k, rec in enumerate(_forward(net, X, ref)):
        hs, dh = np.array(rec["h"]), grads.hidden_deltas[k]          # (T+1, B, H), (B, T, H)
        np.testing.assert_allclose(stats["delta_ms"][k], ((B * dh) ** 2).mean(axis=(0, 2)), rtol=1e-12)
        np.testing.assert_allclose(stats["act_mean"][k], hs[1:].mean(axis=(1, 2)), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(stats["act_var"][k], hs[1:].var(axis=(1, 2)), rtol=1e-10)
        # step t's term of dL/dW_hh, h_(t-1)^T da_t, with da_t from the total dL/dh_t; they sum to the gradient
        if cell == "rnn":
            a = np.array(rec["a"])
            da = dh.transpose(1, 0, 2) * ref.dphi(activation, a)
            terms = np.einsum("tbi,tbj->tij", hs[:-1], da)
            np.testing.assert_allclose(stats["grad_norm"][k], np.sqrt((terms ** 2).sum(axis=(1, 2))), rtol=1e-10)
            np.testing.assert_allclose(terms.sum(axis=0), grads.cells[k]["W_hh"], rtol=1e-10, atol=1e-15)
            slope = ref.dphi(activation, a) / ref.MAX_DERIVATIVE[activation]
            np.testing.assert_array_equal(stats["saturation"][k], (slope < 0.1).mean(axis=(1, 2)))
            np.testing.assert_array_equal(stats["dead_frac"][k], (slope < 0.1).all(axis=1).mean(axis=1))
            np.testing.assert_allclose(stats["preact_var"][k], a.var(axis=(1, 2)), rtol=1e-10)
        else:
            assert stats["grad_norm"][k][0] == 0.0  # h_0 = 0
            slopes = np.array(rec["gate_slopes"])  # (T, B, G H)
            np.testing.assert_array_equal(stats["saturation"][k], (slopes < 0.1).mean(axis=(1, 2)))
            np.testing.assert_array_equal(stats["dead_frac"][k], (slopes < 0.1).all(axis=1).mean(axis=1))
        if cell == "lstm":
            np.testing.assert_allclose(stats["forget_mean"][k], np.array(rec["f"]).mean(axis=(1, 2)), rtol=1e-12)
            np.testing.assert_allclose(stats["cell_rms"][k], np.sqrt((np.array(rec["c"]) ** 2).mean(axis=(1, 2))),
                                       rtol=1e-12)
        if cell == "gru":
            np.testing.assert_allclose(stats["update_mean"][k], np.array(rec["z"]).mean(axis=(1, 2)), rtol=1e-12)
    assert 0 < stats["saturation"].max() <= 1  # the large weights saturate something


def test_gated_grad_norm_terms_sum_to_the_recurrent_gradient():
    # sum_t h_(t-1)^T da_t = dL/dW_hh holds for any norms only if the terms are right; check the
    # triangle inequality and that a one-step sequence has no term at all
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(B, T, N_IN)), rng.integers(0, 2, size=B)
    for cell in ("lstm", "gru"):
        net = RNN(N_IN, H, 2, cell=cell, seed=2)
        stats = net.probe(X, y)
        _, grads = net.loss_and_grads(X, y)
        assert np.linalg.norm(grads.cells[0]["W_hh"]) <= stats["grad_norm"][0].sum() * (1 + 1e-12)
        assert net.probe(X[:, :1], y)["grad_norm"].tolist() == [[0.0]]


def test_histograms_cover_every_layer_and_the_readout():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(B, T, N_IN)), rng.integers(0, 2, size=B)
    net = RNN(N_IN, H, 2, cell="gru", num_layers=2)
    stats, hists = net.probe_with_histograms(X, y, bins=8)
    assert set(hists) == {"act", "delta", "weight_grad"}
    assert all(len(v) == 3 for v in hists.values())
    assert hists["act"][0][0].sum() == B * T * H and hists["act"][2][0].sum() == B * 2
    assert hists["weight_grad"][0][0].sum() == H * 3 * H
    with pytest.raises(ValueError, match="histogram bins must be an integer >= 1"):
        net.probe_with_histograms(X, y, bins=0)


def test_time_layer_encoding_round_trips():
    assert time_layer(2, 37) == 200037
    k, t = layer_and_time(time_layer(np.array([1, 3]), np.array([1, TIME_BASE - 1])))
    assert k.tolist() == [1, 3] and t.tolist() == [1, TIME_BASE - 1]
    for bad in ((0, 1), (1, 0), (1, TIME_BASE)):
        with pytest.raises(ValueError, match="step t in"):
            time_layer(*bad)


@pytest.mark.parametrize("sigma_w", [0.5, 2.0])
def test_delta_ms_at_init_falls_by_sqrt_chi_per_step(single_thread_blas, sigma_w):
    # the table (tanh, width 256, unit-variance inputs): measured 0.339 and 1.047 per step
    # for sigma_w 0.5 and 2, against sqrt(chi) = 0.334 and 1.047; here 3 seeds, T = 60
    from nncore import theory_recurrent
    T_, width = 60, 256
    chi = theory_recurrent.predict("rnn", "tanh", sigma_w, 1.0, 0.0, 1.0, T_)["chi"][-1]
    logs = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X, y = rng.normal(size=(32, T_, 16)), rng.integers(0, 2, size=32)
        net = RNN(16, width, 2, init="normal", init_params={"sigma_w": 1.0},
                  recurrent_params={"sigma_w": sigma_w}, seed=seed)
        d = net.probe(X, y)["delta_ms"][0]
        logs.append(np.log(d[-11] / d[-41]) / 30)  # 30 steps past the transient, away from t = T
    assert np.exp(np.mean(logs) / 2) ** -1 == pytest.approx(np.sqrt(chi), rel=0.03)
