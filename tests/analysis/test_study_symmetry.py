"""analysis.study_symmetry: a run whose units stay identical (unit_spread 0) is said to have an
effective width of 1; one whose units differ gets its range of unit_spread."""
from dataclasses import replace

import pandas as pd

from analysis.study_symmetry import symmetry
from synthetic_runs import make_frames, quietly


def test_identical_units_are_an_effective_width_of_1(tmp_path):
    frames = make_frames(activations=("tanh",), inits=("constant", "xavier_uniform"), depths=(2,),
                         optimizers=("sgd",), diverged=(), nan_run=None)
    spread = frames.layer_stats[frames.layer_stats["stat"] == "act_var"].assign(stat="unit_spread")
    constant = spread["run_id"].str.startswith("tanh-constant")
    spread.loc[constant, "value"] = 0.0
    spread.loc[~constant, "value"] = 0.2 + 0.1 * spread.loc[~constant, "layer"]  # layers 1..3; 3 is the output
    lines = quietly(symmetry, replace(frames, layer_stats=pd.concat([frames.layer_stats, spread])), tmp_path)
    assert (tmp_path / "symmetry.svg").exists()
    width = int(frames.runs["width"].iloc[0])
    assert any(line.startswith(f"- tanh + constant: all {width} units of every hidden layer stay identical")
               and "an effective width of 1" in line for line in lines)
    # hidden layers 1 and 2 only: up to 0.4, at least 0.3
    assert any(line.startswith("- tanh + xavier_uniform: unit_spread up to 0.4 (at least 0.3): the units differ")
               for line in lines)
