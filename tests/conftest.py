"""Shared fixtures: Hydra configs composed with the compose API, as the entry point does."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


@pytest.fixture
def compose_cfg():
    """compose_cfg(*overrides) -> the composed (unvalidated) config."""
    from hydra import compose, initialize_config_dir
    from experiments.config import register

    register()

    def _compose(*overrides):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=list(overrides))
    return _compose
