"""Hydra's basic sweeper without its second composition of every job in the launcher process.

Before launching a batch, BasicSweeper composes each of its jobs' configs once, only to fail early
on a bad one; the launcher then composes each again where the job runs. gradpath's pre-flight
(``experiments.sweep.prepare``) has already composed and validated every job of the sweep, with
the project's schema, before Hydra starts, so that check repeats it: about 0.13 s a job, serial,
before the first job starts (16 s of the default 120-run study). This sweeper runs the same jobs in
the same order and batches, and skips only that repeat.
"""
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class PreflightedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch):
        """Already done: experiments.sweep.prepare composed and validated every job of the sweep."""
