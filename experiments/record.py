"""The job record: the one schema that its writer (experiments.runner, experiments.sync) and its
reader (analysis.load) share.

A job writes its record in its output directory first, then uploads it to MLflow:

  config.yaml, overrides.yaml   the resolved config and Hydra's overrides
  layer_stats.parquet           long format: step, layer, stat, value (every nncore.probes statistic).
                                Recurrent nets: every statistic is per stacked layer k and time step t
                                (nncore.probes_recurrent), stored with layer = k * 100000 + t
                                (nncore.probes_recurrent.time_layer; decode with layer_and_time or
                                ``time_axis`` below): layer 1's step 37 is 100037, layer 2's 200037.
                                The column ``step`` stays the training step.
  histograms.parquet            step, layer, kind, bin, left, right, count
  scalars.parquet               step, name, value, timestamp (the SCALARS below; JACOBIAN_SCALARS at
                                step 0 and at the last step)
  diagnosis.parquet             step, layer, flag, raised: nncore.diagnosis's flags of every hidden
                                layer at step 0 and at the last probe (experiments.diagnose; the
                                budget flags only where judged); for a recurrent net the flags
                                through time (experiments.diagnose_time), layer = k * 100000 + t as
                                in layer_stats
  status.json                   run identity, state and whether it is synced (read_status / write_status)

In MLflow, a run's metrics are
  - the SCALARS over steps, and diverged_step, time/train_seconds, and the filterable numbers
    depth, width, seed and log10_grad_ratio_init (``log10 ||dL/dW_1|| / ||dL/dW_L||`` at step 0);
  - the profiles ``profile_init/<stat>`` and ``profile_final/<stat>`` with step = layer 1..L, in
    log10 (PROFILE_STATS), from step 0 and from the last probed step; for a recurrent net with
    step = time step t = 1..T of its top stacked layer (RECURRENT_PROFILE_STATS);
  - ``grad_norm/train``: every training step's global gradient norm before clipping (step s = the
    norm of the batch that made update s), and ``grad_norm/clipped_fraction`` once, the fraction
    of updates that clip_norm scaled (only when train.clip_norm is set);
  - a few per-layer series over training, in log10 so that their ticks stay readable (a vanishing
    network's first layer has ||dL/dW_1|| near 1e-40): SERIES_STATS at the first and the last layer
    (``log10_grad_norm/layer_01``, ``log10_grad_norm/layer_51``); values without a finite log10 are
    left out and counted in the ``series.skipped`` tag. Every other per-layer series stays in
    layer_stats.parquet and in the run's images, so that the Model metrics tab stays navigable.

Store URIs: ``resolve_uri`` is the one rule (explicit URI, else $MLFLOW_TRACKING_URI, else the
repository's mlflow.db).
"""
import json
import math
import os
from pathlib import Path

import numpy as np

from nncore.probes import JACOBIAN_HISTOGRAM, JACOBIAN_STATS, LAYER_JACOBIAN_STAT  # noqa: F401 (re-exported)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "gradpath"
DEFAULT_TRACKING_URI = f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def resolve_uri(uri=None):
    """The explicit URI, else $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_path(uri):
    """Database file of a sqlite:/// URI, else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


# --- files ------------------------------------------------------------------------------------------

STATUS_FILE = "status.json"
LAYER_STATS_FILE = "layer_stats.parquet"
HISTOGRAMS_FILE = "histograms.parquet"
SCALARS_FILE = "scalars.parquet"
# Artifact of a sweep's parent run: its whole grid, [{"config_hash": ..., "overrides": [...]}, ...]
# (experiments.sweep writes it, analysis.load selects the sweep's runs by it).
GRID_FILE = "grid.json"
# On a sweep's parent run: when it was last launched (ms since the epoch). A grid run again reuses its
# parent, whose start time stays that of the first launch; "the latest sweep" is the latest launched.
LAUNCHED_TAG = "launched_ms"
# In a sweep's directory when its launcher could not close the parent run (the store was down at the
# end): {"tracking_uri", "run_id", "status", "launched_ms", "synced"}; `make sync` closes the run.
PARENT_FILE = "parent.json"
# The sweep's directory (hydra.sweep.dir, resolved), set in the launcher by gradpath's sweeper.
ENV_SWEEP_DIR = "GRADPATH_SWEEP_DIR"
# Column -> dtype of each Parquet history, as written (the reader prepends run_id).
LAYER_STATS_COLUMNS = {"step": "int64", "layer": "int64", "stat": "str", "value": "float64"}
HISTOGRAM_COLUMNS = {"step": "int64", "layer": "int64", "kind": "str", "bin": "int64",
                     "left": "float64", "right": "float64", "count": "int64"}
SCALAR_COLUMNS = {"step": "int64", "name": "str", "value": "float64", "timestamp": "int64"}
DIAGNOSIS_FILE = "diagnosis.parquet"
DIAGNOSIS_COLUMNS = {"step": "int64", "layer": "int64", "flag": "str", "raised": "bool"}
# Uploaded as the run's artifacts, in this order.
ARTIFACTS = ("config.yaml", "overrides.yaml", LAYER_STATS_FILE, HISTOGRAMS_FILE, SCALARS_FILE, DIAGNOSIS_FILE)
# Tags known only when the job has finished (the others are set when its run is created): outcome
# (ok / diverged, kept for compatibility) and the diagnosis's verdicts (experiments.diagnose).
# The verdicts: the network's flags (pathology_*), what the run's optimizer steps can do with its
# gradients (budget_*: frozen, or n/a when not judged), and the run's trainability.
VERDICT_TAGS = ("pathology_init", "pathology_final", "budget_init", "budget_final", "trainability")
RESULT_TAGS = ("outcome", *VERDICT_TAGS, "majority_rate", "baseline_mse")


def read_status(record):
    return json.loads((Path(record) / STATUS_FILE).read_text())


def write_status(record, status):
    write_json(Path(record) / STATUS_FILE, status)


def write_json(path, content):
    """Atomic: a kill leaves the old or the new file, never half a file."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    tmp.replace(path)


# Tags of every job run: host:pid of the process training it (for people), and the path of the job
# lock it holds while it runs (experiments.liveness), so that a pre-flight closes only the RUNNING
# runs whose process has ended (experiments.sweep.close_stale_runs).
PROCESS_TAG = "process"
PROCESS_LOCK_TAG = "process_lock"


# --- metric keys --------------------------------------------------------------------------------------

# Scalars at step 0 and every log_every steps. The probe batch is a fixed subset of the training set
# (dropout off): loss/train and acc/train are measured on it, and grad_norm/probe_batch is the global
# norm of its gradient (weights and biases of every layer). The training batch's norm, which the
# optimizer clips, is not a metric.
LOSS_TRAIN, LOSS_VAL, ACC_TRAIN, ACC_VAL = "loss/train", "loss/val", "acc/train", "acc/val"
GRAD_NORM_PROBE_BATCH = "grad_norm/probe_batch"
SCALARS = (LOSS_TRAIN, LOSS_VAL, ACC_TRAIN, ACC_VAL, GRAD_NORM_PROBE_BATCH)
# Every training step's global gradient norm before clipping (scalars.parquet and MLflow), and the
# fraction of updates clipped (status.json and MLflow, with train.clip_norm only).
GRAD_NORM_TRAIN = "grad_norm/train"
CLIPPED_FRACTION = "grad_norm/clipped_fraction"
# The Jacobian probe's scalars (nncore.probes.JACOBIAN_STATS of J = d a_(L-1)/dx), at step 0 and at the
# last step only: rows of scalars.parquet and MLflow metrics ``jacobian/sv2_mean`` etc. Its histogram
# (of log10 of the squared singular values) is the kind JACOBIAN_HISTOGRAM of histograms.parquet (layer = L-1), its per-layer average singular
# values the stat LAYER_JACOBIAN_STAT of layer_stats.parquet, at the same two steps.
JACOBIAN_SCALARS = {stat: f"jacobian/{stat}" for stat in JACOBIAN_STATS}
# Metrics logged once, at the last step: the step whose loss, gradient or parameters were
# non-finite (only when the run diverged), and the training loop's wall time in seconds.
DIVERGED_STEP = "diverged_step"
TRAIN_SECONDS = "time/train_seconds"
# Per-layer series over training that are MLflow metrics (log10 of the statistic), at series_layers only.
SERIES_STATS = ("grad_norm",)
SERIES_SKIPPED_TAG = "series.skipped"  # counts the series values left out (zero, negative or non-finite)


def series_layers(n_layers):
    """The layers whose SERIES_STATS are MLflow metrics over steps: the first and the output layer."""
    return sorted({1, int(n_layers)})


def layer_key(stat, layer, n_layers):
    """``grad_norm/layer_07``: two digits, three when there are 100 or more layers."""
    return f"{stat}/layer_{layer:0{max(2, len(str(n_layers)))}d}"


def series_key(stat, layer, n_layers):
    """The MLflow key of a per-layer series: ``log10_grad_norm/layer_07``."""
    return layer_key(f"log10_{stat}", layer, n_layers)


PROFILES = ("init", "final")
# Profile statistic -> (numerator stat, denominator stat or None), logged as log10 of the ratio.
PROFILE_STATS = {
    "log10_grad_norm": ("grad_norm", None),
    "log10_grad_norm_rel": ("grad_norm", "weight_norm"),   # ||dL/dW_l|| / ||W_l||
    "log10_delta_ms": ("delta_ms", None),
    "log10_act_var": ("act_var", None),
}
# A recurrent net's profiles over time steps (step = t), from its top stacked layer: the layer whose
# h_T the readout sees, where the error enters at t = T.
RECURRENT_PROFILE_STATS = {
    "log10_grad_norm": ("grad_norm", None),     # ||h_(t-1)^T da_t||: step t's term of dL/dW_hh
    "log10_delta_ms": ("delta_ms", None),
    "log10_act_var": ("act_var", None),
}
GRAD_RATIO_INIT = "log10_grad_ratio_init"
CONFIG_METRICS = ("depth", "width", "seed")           # tags too; as metrics they filter and sort as numbers


def profile_key(profile, stat):
    """``profile_init/log10_grad_norm``."""
    return f"profile_{profile}/{stat}"


def skipped_tag(profile):
    """Tag counting the profile values left out (zero, negative or non-finite: no log10)."""
    return f"profile_{profile}.skipped"


def profile_values(stats_at_step, stat, definitions=PROFILE_STATS):
    """{layer: log10 value} of profile ``stat`` (of ``definitions``: PROFILE_STATS, or
    RECURRENT_PROFILE_STATS with layer = time step) from one step's {stat: {layer: value}}; and the
    number of layers left out because the value has no finite log10."""
    num_stat, den_stat = definitions[stat]
    num = stats_at_step.get(num_stat, {})
    den = stats_at_step.get(den_stat, {}) if den_stat else None
    values, skipped = {}, 0
    for layer, value in sorted(num.items()):
        if den is not None:
            d = den.get(layer, math.nan)
            value = value / d if d and math.isfinite(d) else math.nan
        if math.isfinite(value) and value > 0:
            values[int(layer)] = math.log10(value)
        else:
            skipped += 1
    return values, skipped


def log10_grad_ratio(grad_norm_by_layer):
    """log10(||dL/dW_1|| / ||dL/dW_L||), or None when either norm is zero or non-finite."""
    if not grad_norm_by_layer:
        return None
    first = grad_norm_by_layer.get(1, math.nan)
    last = grad_norm_by_layer.get(max(grad_norm_by_layer), math.nan)
    if not (math.isfinite(first) and math.isfinite(last) and first > 0 and last > 0):
        return None
    return math.log10(first) - math.log10(last)


def steps_and_layers(layer_stats):
    """{step: {stat: {layer: value}}} of a layer_stats frame (columns step, layer, stat, value)."""
    out = {}
    for step, layer, stat, value in layer_stats[["step", "layer", "stat", "value"]].itertuples(index=False):
        out.setdefault(int(step), {}).setdefault(stat, {})[int(layer)] = float(value)
    return out


def final_probe_step(by_step):
    """The last probed step (for a diverged run: its last probe, which may hold non-finite values)."""
    return max(by_step) if by_step else None



def time_axis(layer_stats):
    """``layer_stats`` of a recurrent run with its ``layer`` code split into ``cell_layer`` (k) and
    ``time`` (t): a copy with the two int64 columns added."""
    from nncore.probes_recurrent import layer_and_time
    k, t = layer_and_time(layer_stats["layer"].to_numpy(np.int64))
    return layer_stats.assign(cell_layer=k, time=t)

