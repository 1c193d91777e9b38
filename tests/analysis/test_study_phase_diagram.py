"""analysis.study_phase_diagram: the accuracy grid over (sigma_w^2, depth), and the section's refusal to
set a trainability threshold when the runs disagree on the number of classes."""
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.study_phase_diagram import phase_diagram, phase_table
from synthetic_runs import make_frames, quietly


def test_phase_table_averages_seeds_per_sigma_w2_and_depth():
    runs = pd.DataFrame({"sigma_w": [1.0, 1.0, np.sqrt(2.0), 1.0], "depth": [3, 3, 3, 6],
                         "acc/val": [0.4, 0.6, 0.9, 0.2]})
    grid = phase_table(runs)
    assert list(grid.index) == [3, 6] and list(grid.columns) == [1.0, 2.0]
    assert grid.loc[3, 1.0] == 0.5 and grid.loc[3, 2.0] == 0.9 and grid.loc[6, 1.0] == 0.2
    assert np.isnan(grid.loc[6, 2.0])


def test_no_threshold_without_one_number_of_classes(tmp_path):
    frames = make_frames(activations=("tanh",), inits=("xavier_uniform",), depths=(2, 5), optimizers=("sgd",),
                         diverged=(), nan_run=None)
    runs = frames.runs.assign(sigma_w=1.0, sigma_b=0.2, n_out=[10.0, 3.0])
    lines = quietly(phase_diagram, replace(frames, runs=runs), tmp_path)
    assert (tmp_path / "phase_diagram.svg").exists()
    assert any(line.startswith("- No trainability threshold: chance accuracy needs one number of classes "
                               "(the runs' n_out tags give 2)") for line in lines)
