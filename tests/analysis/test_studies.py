"""Small versions of the named experiments, run end to end in-process, each writing its report section."""
import pytest

from analysis import report
from analysis.load import load_frames
from analysis.studies import study_section
from experiments import runner, sweep

pytestmark = pytest.mark.slow

SMALL = {
    "glorot2010": ["model.width=24", "train.epochs=1", "train.batch_size=128", "train.log_every=4"],
    "he2015": ["model.width=16", "model.depth=8", "train.epochs=2", "train.log_every=5"],
    "phase_diagram": ["init.sigma_w=1.0,2.0", "model.depth=3,6", "train.epochs=1", "train.log_every=5"],
    "symmetry": ["model.width=8", "train.epochs=2", "train.log_every=5"],
    "isometry": ["+isometry_net=relu,tanh_small_q", "model.depth=2,4", "seed=0", "train.epochs=1", "train.log_every=5"],
    "remedies": ["model.depth=6", "model.width=16", "train.epochs=1", "train.log_every=5", "activation=relu",
                 "init=he_uniform", "arch=plain,residual,batchnorm,residual_layernorm"],
    "rnn_init": ["net=tanh_sw0.5,tanh_sw3,irnn,lstm_fb1", "model.width=32", "data.length=20", "train.probe_size=64"],
    "adding": ["net=tanh_pytorch,lstm_fb1", "data.length=4,8", "seed=0", "model.width=4", "data.n_train=64",
               "data.n_val=32", "train.epochs=2", "train.log_every=2", "train.probe_size=16"],
    "clipping": ["model.width=8", "data.length=20", "data.n_train=64", "data.n_val=32", "train.epochs=1",
                 "train.log_every=1", "train.probe_size=16"],
}
EXPECTED = {
    "glorot2010": ["## Glorot & Bengio 2010", "glorot_fig2_saturation.png", "glorot_fig6_7_histograms.png",
                   "| sigmoid | uniform |", "| softsign | xavier_uniform |", "Top hidden layer (layer 4)",
                   "near the lower bound 0", "Average singular value of each hidden layer's Jacobian",
                   "with normalized init and"],
    "he2015": ["## He et al. 2015", "he2015_curves.png", "- he_normal: loss", "- xavier_normal: loss"],
    "phase_diagram": ["## Schoenholz et al. 2017", "phase_diagram.png", "order-to-chaos transition at sigma_w^2 = 1.76"],
    "remedies": ["## Remedies", "remedies_profiles.png", "### BatchNorm: the gradient explosion at init",
                 "| BatchNorm | relu | he_uniform |", "| residual (scale 1) | 1 | relu | he_uniform |"],
    "isometry": ["## Dynamical isometry", "isometry_spectra.png", "isometry_variance.png", "isometry_training.png",
                 "| relu | Gaussian | 2 | 0.0312 |", "| relu | orthogonal | 4 |",
                 "Orthogonal tanh ended with a lower training loss than Gaussian tanh in"],
    "symmetry": ["## The symmetry problem", "symmetry.png",
                 "tanh + constant: all 8 units of every hidden layer stay identical (unit_spread exactly 0)",
                 "relu + xavier_uniform: unit_spread up to"],
    "rnn_init": ["## Gradients through time at initialization (rnn_init)", "rnn_init_delta_ms.png",
                 "| tanh, sigma_w=0.5 |", "| tanh, sigma_w=3 |", "| IRNN |", "| LSTM fb=1 |", "relative error is",
                 "## Recurrent networks: gradients through time", "recurrent_delta_ms.png", "- Recurrent runs: 4"],
    "adding": ["## The adding problem over sequence length (adding)", "adding_map.png", "adding_curves.png",
               "Always predicting 1 scores MSE 1/6 = 0.167", "| network | T = 4 | T = 8 |", "| LSTM fb=1 | ",
               "| tanh, pytorch | "],
    "clipping": ["## Gradient clipping (clipping)", "clipping_grad_norm.png", "- no clipping: ", "- clip_norm = 1: ",
                 "of the updates clipped"],
}


@pytest.mark.parametrize("study", sorted(SMALL))
def test_small_study_runs_and_writes_its_section(study, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for var in (runner.ENV_PARENT_RUN, runner.ENV_SWEEP, runner.ENV_EXPERIMENT_ID, runner.ENV_SKIP_FILE):
        monkeypatch.delenv(var, raising=False)
    jobs = sweep.compose_jobs(sweep.expand([f"experiment={study}", f"tracking.uri={uri}", *SMALL[study]], True))
    for i, (overrides, cfg, _) in enumerate(jobs):
        assert cfg.study == study
        assert runner.run_job(cfg, tmp_path / "jobs" / str(i), overrides) in ("ok", "diverged")
    out = tmp_path / "report"
    if study in ("symmetry", "rnn_init"):  # the whole command (MLP, recurrent); the section alone for the others
        assert report.main(["--study", study, "--tracking-uri", uri, "--out", str(out), "--no-log", "--jobs", "1"]) == 0
        text = (out / "report.md").read_text()
        if study == "symmetry":
            theory = text.split("## Theory vs measurement")[1]
            assert "| tanh | xavier_uniform |" in theory and "constant" not in theory  # no mean field for constant
        else:  # a report of recurrent runs only has no MLP section
            assert "## Gradients at initialization" not in text and "Theory vs measurement" not in text
            assert (out / "summary.csv").read_text().count("\n") == 1 + len(jobs)
    else:
        frames = load_frames(study=study, tracking_uri=uri)
        assert len(frames.runs) == len(jobs)
        text = "\n".join(study_section(study, frames, out / "figures"))
    for needle in EXPECTED[study]:
        assert needle in text, needle
        if needle.endswith(".png"):
            assert (out / "figures" / needle).exists()
