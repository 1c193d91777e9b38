"""analysis.sections.ratio_vs_depth: the first-to-last layer gradient ratio against depth."""
from analysis import diagnosis
from analysis.sections.ratio_vs_depth import fig_ratio_vs_depth, ratio_vs_depth_observations
from figure_checks import all_text, check_grid
from synthetic_runs import SMALL_GRID, quietly


def test_ratio_vs_depth_has_a_panel_per_activation_and_a_factor_10_band(frames):
    fig = quietly(fig_ratio_vs_depth, frames.layer_stats, frames.runs)
    axes = check_grid(fig, 1, 2, "depth (hidden layers)", r"$\log_{10}(\|g_1\| / \|g_L\|)$ at init", log_y=False)
    assert [ax.get_title() for ax in axes[0]] == ["relu", "sigmoid"]
    assert "|log10 ratio| < 1" in all_text(fig) and "not a health test" in all_text(fig)
    assert all(ax.patches for ax in axes.flat)                # the shaded band
    lines = {tuple(line.get_xdata()): line for line in axes[0, 1].get_lines() if len(line.get_xdata()) == 2}
    assert lines                                              # one line per init over depths 2 and 5


def test_an_unjudged_depth_ends_the_clean_depth_range(frames_factory):
    frames = frames_factory(**SMALL_GRID, failed_run=("sigmoid", "he_uniform", 5, "sgd"))
    runs = diagnosis.with_diagnosis(frames).runs
    sentences = ratio_vs_depth_observations(frames.layer_stats, runs)
    sigmoid = next(sentence for sentence in sentences if sentence.startswith("sigmoid, "))
    assert "he_uniform 2 / 2" in sigmoid      # depth 5 has no verdict: not "no pathology up to 5"
