"""analysis.study_glorot2010: Fig. 2's numbers (the top sigmoid layer's lowest mean, the lower layers
there, near_lower_bound, recovery) and section 4.2's Jacobian table, on statistics built in the test."""
import pandas as pd

from analysis.study_glorot2010 import fig2_sentences, jacobian_table


def stats_frame(rows):
    return pd.DataFrame(rows, columns=["run_id", "step", "layer", "stat", "value"])


def fig2_stats(top_means, lower_means, near):
    """Depth 3: layer 3's act_mean per step, layers 1-2's (fixed over steps), and layer 3's near_lower_bound."""
    steps = [0, 10, 20, 30]
    rows = [("r", step, 3, "act_mean", value) for step, value in zip(steps, top_means)]
    rows += [("r", step, layer, "act_mean", value) for step in steps for layer, value in ((1, lower_means[0]),
                                                                                         (2, lower_means[1]))]
    rows += [("r", step, 3, "near_lower_bound", value) for step, value in zip(steps, near)]
    return stats_frame(rows)


def test_the_top_layer_driven_to_zero_then_coming_back():
    stats = fig2_stats([0.5, 0.1, 0.02, 0.2], (0.6, 0.7), [0.0, 0.4, 0.9, 0.3])
    top, lower, last = fig2_sentences(stats, "r", 3)
    assert top == ("- Top hidden layer (layer 3): mean activation 0.500 at initialization, lowest 0.0200 at step 20 "
                   "of 30; there 90.0% of its activations are near the lower bound 0 (sigmoid < 0.05, the paper's "
                   "saturation; at most 90.0% over training, 0.0% at init).")
    assert lower.startswith("- At that step the lower hidden layers' mean activations are layer 1 0.600, layer 2 0.700: "
                            "the top layer is the one driven toward 0, as in the paper")
    assert lower.endswith("every lower layer stays above 0.5, as in the paper.")
    assert last == ("- By the last step (30) the top layer's mean is 0.2000: it has come back up by 0.180 from its "
                    "lowest (the paper's slow desaturation).")


def test_no_recovery_and_a_lower_layer_below_one_half():
    stats = fig2_stats([0.5, 0.3, 0.2, 0.21], (0.4, 0.1), [0.0, 0.0, 0.1, 0.1])
    _, lower, last = fig2_sentences(stats, "r", 3)
    assert "the top layer is not the lowest here, unlike the paper" in lower     # 0.2 > layer 2's 0.1
    assert lower.endswith("; 2 lower layer(s) at or below 0.5.")
    assert last.endswith(": it has not come back up within this budget (the paper's recovery took many epochs).")


def test_no_mean_activation_gives_no_sentences():
    stats = stats_frame([("r", 0, 3, "act_var", 1.0)])
    assert fig2_sentences(stats, "r", 3) == []


def test_the_jacobian_table_against_the_papers_numbers():
    runs = pd.DataFrame({"run_id": ["u", "x"], "activation": ["tanh", "tanh"], "init": ["uniform", "xavier_uniform"],
                         "depth": [3, 3]})
    values = {"u": [0.3, 0.5, 0.4], "x": [0.9, 0.8, 0.84]}
    rows = [(run, 0, layer, "jacobian_sv_mean", value) for run, sv in values.items()
            for layer, value in enumerate(sv, start=1)]
    rows += [("u", 100, 2, "jacobian_sv_mean", 9.0)]   # a later step is not the table's
    lines = jacobian_table(stats_frame(rows), runs)
    assert "| activation | init | layer 1 | layer 2 | layer 3 | mean of layers 2-3 | paper |" in lines
    assert "| tanh | uniform | 0.300 | 0.500 | 0.400 | 0.450 | about 0.5 |" in lines
    assert "| tanh | xavier_uniform | 0.900 | 0.800 | 0.840 | 0.820 | about 0.8 |" in lines
    assert ("- tanh: 0.82 with normalized init and 0.45 with standard init, layers 2-3 "
            "(paper: about 0.8 and 0.5).") in lines


def test_no_jacobian_probe_gives_no_table():
    runs = pd.DataFrame({"run_id": ["u"], "activation": ["tanh"], "init": ["uniform"], "depth": [3]})
    assert jacobian_table(stats_frame([("u", 0, 1, "act_var", 1.0)]), runs) == []
