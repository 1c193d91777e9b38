"""analysis.study_he2015: per init, whether the deep ReLU network's training loss fell (it learns)
or stayed within 5% (it stalls)."""
from dataclasses import replace

import numpy as np

from analysis.study_he2015 import he2015
from synthetic_runs import make_frames, quietly


def test_a_flat_loss_stalls_and_a_falling_one_learns(tmp_path):
    frames = make_frames(activations=("relu",), inits=("he_uniform", "xavier_uniform"), depths=(5,),
                         optimizers=("sgd",), diverged=(), nan_run=None)
    scalars = frames.scalars.copy()
    loss = scalars["name"] == "loss/train"
    xavier = scalars["run_id"].str.startswith("relu-xavier_uniform")
    # he: 2.0 -> 0.5 (-75%); xavier: 2.30 -> 2.25 (-2.2%, within 5%)
    scalars.loc[loss & ~xavier, "value"] = np.linspace(2.0, 0.5, int((loss & ~xavier).sum()))
    scalars.loc[loss & xavier, "value"] = np.linspace(2.30, 2.25, int((loss & xavier).sum()))
    lines = quietly(he2015, replace(frames, scalars=scalars), tmp_path)
    assert (tmp_path / "he2015_curves.svg").exists()
    he = next(line for line in lines if line.startswith("- he_uniform:"))
    xavier_line = next(line for line in lines if line.startswith("- xavier_uniform:"))
    assert "loss 2.000 -> 0.500 (-75.0%)" in he and he.endswith("it learns.")
    assert "loss 2.300 -> 2.250 (-2.2%)" in xavier_line and xavier_line.endswith("it stalls.")
