"""The default sweeper: Hydra's basic sweeper's jobs, order and batches, without composing every
job a second time in the launcher process (the pre-flight has composed and validated them)."""
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from experiments.config import register

CONF = Path(__file__).resolve().parents[2] / "conf"


class CountingLoader:
    def __init__(self):
        self.composed = []

    def load_sweep_config(self, master_config, sweep_overrides):
        self.composed.append(list(sweep_overrides))
        return master_config


class RecordingLauncher:
    def __init__(self):
        self.batches = []

    def launch(self, batch, initial_job_idx):
        self.batches.append((initial_job_idx, [list(job) for job in batch]))
        return []


class Context:
    def __init__(self, loader):
        self.config_loader = loader


def _sweep(cls, tmp_path, max_batch_size=None):
    sweeper = cls(max_batch_size=max_batch_size, params={"model.depth": "2,5", "activation": "tanh,relu"})
    loader, launcher = CountingLoader(), RecordingLauncher()
    sweeper.hydra_context, sweeper.launcher = Context(loader), launcher
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / cls.__name__)}}})
    sweeper.sweep(["seed=3"])
    return loader.composed, launcher.batches


def test_same_jobs_and_batches_as_the_basic_sweeper_without_composing_them(tmp_path):
    # The classes as Hydra finds them: its plugin scan re-executes the plugin modules, so a class
    # imported before a scan may subclass a BasicSweeper that the module no longer holds.
    found = {cls.__name__: cls for cls in Plugins.instance().discover(Sweeper)}
    BasicSweeper, PreflightedSweeper = found["BasicSweeper"], found["PreflightedSweeper"]
    for batch_size in (None, 3):
        basic_composed, basic_batches = _sweep(BasicSweeper, tmp_path, batch_size)
        composed, batches = _sweep(PreflightedSweeper, tmp_path, batch_size)
        assert batches == basic_batches
        assert [job for _, jobs in batches for job in jobs] == basic_composed  # 4 jobs, Hydra's order
        assert len(basic_composed) == 4 and composed == []


def test_it_is_the_default_sweeper():
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.gradpath_sweeper.preflighted_sweeper.PreflightedSweeper"
