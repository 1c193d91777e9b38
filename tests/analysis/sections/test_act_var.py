"""analysis.sections.act_var: the activation variance per layer at initialization and at the end."""
from analysis.sections.act_var import act_var_observations
from analysis.tables import FINAL, INIT
from synthetic_runs import make_frames


def test_the_variance_ratio_is_the_synthetic_one_at_init_and_at_the_end():
    # synthetic act_var: 0.3 * 10^(g (l - 1) / 2) with gain g halved by the end of training, so the
    # last hidden layer (5) over layer 1 is 10^(2 g) at init and 10^g at the last step
    frames = make_frames(gains={("sigmoid", "uniform"): -0.5})
    at_init = act_var_observations(frames.layer_stats, frames.runs, INIT)
    at_end = act_var_observations(frames.layer_stats, frames.runs, FINAL)
    assert "relative to layer 1 is 10⁻¹·⁰ for sigmoid + uniform (the largest departure from 1)" in at_init[0]
    assert "relative to layer 1 is 10⁻⁰·⁵ for sigmoid + uniform with adam (the largest departure from 1)" in at_end[0]
    assert at_init[0].startswith("At depth 5 (initialization)")
