"""analysis.sections: every registered figure section draws a titled, readable figure (never a
traceback) for degenerate data: no runs, no histories, only non-finite values, one depth."""
import numpy as np
import pytest

from analysis.load import Frames
from analysis.sections import SECTIONS
from figure_checks import is_no_data
from synthetic_runs import quietly


def empty_like(frames):
    return Frames(runs=frames.runs.iloc[0:0], layer_stats=frames.layer_stats.iloc[0:0],
                  histograms=frames.histograms.iloc[0:0], scalars=frames.scalars.iloc[0:0])


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.name)
def test_no_runs_give_a_titled_no_data_figure(frames, section):
    fig = quietly(section.draw, empty_like(frames), None)
    assert is_no_data(fig) and fig.get_suptitle()


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.name)
def test_runs_without_histories_give_a_sensible_figure(frames, section):
    runs_only = Frames(runs=frames.runs, layer_stats=frames.layer_stats.iloc[0:0],
                       histograms=frames.histograms.iloc[0:0], scalars=frames.scalars.iloc[0:0])
    fig = quietly(section.draw, runs_only, None)
    assert fig.get_suptitle()
    assert is_no_data(fig) or section.name == "outcome_map"   # the outcome map only needs the runs


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.name)
def test_all_nan_values_give_a_no_data_figure_not_a_blank_one(frames, section):
    nan_frames = Frames(runs=frames.runs, layer_stats=frames.layer_stats.assign(value=np.nan),
                        histograms=frames.histograms.assign(count=0), scalars=frames.scalars.assign(value=np.inf))
    fig = quietly(section.draw, nan_frames, None)
    assert fig.get_suptitle()
    assert is_no_data(fig) or section.name == "outcome_map"   # the outcome map only needs the runs


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.name)
def test_single_depth_missing_layer_and_infinite_values(frames_factory, section):
    degenerate = frames_factory(depths=(5,), missing_layer_run=("sigmoid", "uniform", 5, "adam"))
    fig = quietly(section.draw, degenerate, None)
    assert fig.get_suptitle() and not is_no_data(fig)
