"""Hydra's basic sweeper without its second composition of every job in the launcher process.

Before launching a batch, BasicSweeper composes each of its jobs' configs once, only to fail early
on a bad one; the launcher then composes each again where the job runs. gradpath's pre-flight
(``experiments.sweep.prepare``) has already composed and validated every job of the sweep, with
the project's schema, before Hydra starts, so that check repeats it: about 0.13 s a job, serial,
before the first job starts (16 s of the default 120-run study). This sweeper runs the same jobs in
the same order and batches, and skips only that repeat.
"""
import os
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

# experiments.record.ENV_SWEEP_DIR (not imported: the plugin is found by Hydra's plugin scan, which
# imports it in every process that lists plugins)
ENV_SWEEP_DIR = "GRADPATH_SWEEP_DIR"


class PreflightedSweeper(BasicSweeper):
    def sweep(self, arguments):
        """BasicSweeper's sweep; first tells the launcher process where the sweep directory is (for
        the record of a parent run it could not close: experiments.sweep.finish_parent)."""
        os.environ[ENV_SWEEP_DIR] = str(Path(str(self.config.hydra.sweep.dir)).resolve())
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch):
        """Already done: experiments.sweep.prepare composed and validated every job of the sweep."""
