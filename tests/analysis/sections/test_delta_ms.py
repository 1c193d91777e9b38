"""analysis.sections.delta_ms: the back-propagated error per layer at initialization."""
from analysis.sections.delta_ms import delta_ms_observations
from analysis.tables import INIT
from synthetic_runs import make_frames


def test_error_observations_follow_the_data():
    vanishing = make_frames(gains={("sigmoid", "uniform"): -0.5, ("relu", "uniform"): -0.3})
    balanced = make_frames(gains={})
    # delta_ms is a squared quantity in the synthetic data: twice the exponent
    assert "is 10⁻⁵·⁰ for sigmoid + uniform (the largest departure from 1)" in " ".join(
        delta_ms_observations(vanishing.layer_stats, vanishing.runs, INIT))
    assert "10⁻⁵·⁰" not in " ".join(delta_ms_observations(balanced.layer_stats, balanced.runs, INIT))
