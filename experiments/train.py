"""Hydra entry point: one run, or a sweep with -m.

    python experiments/train.py activation=relu init=he_uniform model.depth=20
    python experiments/train.py -m experiment=study          # the default study
    python experiments/train.py -m activation=tanh,relu model.depth=5,20

Before Hydra launches anything, experiments.sweep validates every job's config
and opens the store; a bad value exits non-zero with one line naming the key.
Sweeps skip grid points already FINISHED (same config_hash) unless FORCE=1.
"""
import gc

gc.disable()  # until runner.freeze_imports below: the imports build objects, not garbage
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402

from experiments import runner, sweep  # noqa: E402 - through experiments.tracking: MLflow's telemetry off
from experiments.config import register  # noqa: E402

# Flags that only print (help, the config) and never touch the store.
INFO_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--resolve")


def info_only(argv):
    """Whether the command line only prints (an INFO_FLAGS flag)."""
    return any(flag in INFO_FLAGS for flag in sweep.split_argv(argv)[1])


if not info_only(sys.argv[1:]):
    runner.freeze_imports()  # imports MLflow's store too; with the above, ~1.5 s of a single run's wall
gc.enable()
register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg):
    hc = HydraConfig.get()
    if hc.mode.name == "MULTIRUN":
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)  # one BLAS thread per worker: N workers on N cores
        runner.freeze_imports()  # a worker's first job (joblib's workers collect after every job)
    return runner.run_job(cfg, hc.runtime.output_dir, overrides=hc.overrides.task)


def interrupt_on_sigterm():
    """SIGTERM (what timeout, systemd and SLURM send) stops like Ctrl-C: KeyboardInterrupt in the
    main thread, so that runs are closed as KILLED, the sweep's parent too, and its workers stopped."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
    signal.signal(signal.SIGTERM, interrupt)


def cli(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if info_only(argv):
        return main()
    interrupt_on_sigterm()
    force = os.environ.get("FORCE", "0") not in ("", "0", "false", "False")
    started = time.time()
    try:
        plan = sweep.prepare(argv, force=force)
    except sweep.PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    multirun = bool(plan.sweep_id)
    if not multirun:
        os.environ[runner.ENV_EXPERIMENT_ID] = plan.experiment_id
        return main()

    n_total, to_run = len(plan.jobs), plan.to_run
    skipped = n_total - len(to_run)
    print(f"sweep {plan.sweep_id}: {n_total} runs, {skipped} skipped (already FINISHED), "
          f"{len(to_run)} to run; store {plan.uri}", file=sys.stderr)
    if not to_run:
        sweep.finish_parent(plan, "FINISHED")
        return 0
    with tempfile.TemporaryDirectory(prefix="gradpath-") as tmp:
        skip_file = os.path.join(tmp, "skip.json")
        with open(skip_file, "w") as fh:
            import json
            json.dump(sorted(plan.done), fh)
        progress_dir = os.path.join(tmp, "progress")
        os.makedirs(progress_dir)
        job_env = {runner.ENV_EXPERIMENT_ID: plan.experiment_id, runner.ENV_PARENT_RUN: plan.parent_run_id,
                   runner.ENV_SWEEP: plan.sweep_id, runner.ENV_SKIP_FILE: "" if force else skip_file,
                   runner.ENV_PROGRESS_DIR: progress_dir,
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        os.environ.update(job_env)  # workers started here (joblib, submitit_local) inherit it
        # ...and hydra.job.env_set sets it inside every job whatever the launcher, also on workers
        # that do not inherit this environment (a Ray cluster, SLURM with --export=NONE).
        sys.argv = [sys.argv[0], *argv, *env_set_overrides(job_env)]
        status = "FAILED"
        try:
            with sweep.Progress(progress_dir, n_total) as progress:
                progress.bar.update(0)
                main()
                status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except SystemExit as exc:
            status = "FINISHED" if not exc.code else "FAILED"
            raise
        finally:
            sweep.finish_parent(plan, status)
            done, kinds = progress.counts()
            print(f"sweep {plan.sweep_id}: {status.lower()} in {time.time() - started:.1f} s: "
                  f"{kinds['ok']} ok, {kinds['diverged']} diverged, {kinds['failed']} failed, "
                  f"{done - sum(kinds.values())} skipped", file=sys.stderr)
    return 0


def env_set_overrides(env):
    """``++hydra.job.env_set.KEY='value'`` overrides: Hydra exports them in each job's process."""
    def quote(value):  # Hydra's quoted string: backslashes are literal except before a quote or the end
        value = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, str(value))
        return "'" + value.replace("'", "\\'") + "'"
    return [f"++hydra.job.env_set.{key}={quote(value)}" for key, value in env.items()]


if __name__ == "__main__":
    try:
        sys.exit(cli())
    except KeyboardInterrupt:
        print("interrupted: unfinished runs are closed as KILLED; run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
