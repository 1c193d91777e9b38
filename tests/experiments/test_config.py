import pytest
from omegaconf import OmegaConf

from experiments.config import (ConfigError, activation_params, config_hash, flatten, identity, logged_params,
                                optimizer_kwargs, run_name, validate)
from experiments.record import layer_key
from experiments.runner import histogram_steps
from nncore import activations, initializers, optimizers

CONF = __import__("pathlib").Path(__file__).resolve().parents[2] / "conf"


def test_defaults_compose_and_validate(compose_cfg):
    cfg = compose_cfg()
    validate(cfg)
    assert cfg.model.depth == 5 and cfg.data.name == "digits" and cfg.tracking.uri is None
    assert cfg.train.dtype == "float64"


@pytest.mark.parametrize("group,registry", [("activation", activations.REGISTRY), ("init", initializers.REGISTRY),
                                            ("optimizer", optimizers.REGISTRY)])
def test_every_core_name_has_a_group_option(group, registry, compose_cfg):
    options = {p.stem for p in (CONF / group).glob("*.yaml")}
    assert set(registry) <= options
    for name in options:
        # PyTorch's recurrent default init exists for recurrent nets only
        recurrent = ("arch=rnn", "data=adding") if (group, name) == ("init", "pytorch") else ()
        cfg = compose_cfg(f"{group}={name}", *recurrent)
        validate(cfg)
        assert cfg[group].name == name


def test_every_dataset_composes(compose_cfg):
    from experiments import datasets
    assert {p.stem for p in (CONF / "data").glob("*.yaml")} == set(datasets.LOADERS) == set(datasets.KINDS)
    for name, kind in datasets.KINDS.items():
        cfg = compose_cfg(f"data={name}", *(("arch=lstm",) if kind == "sequences" else ()))
        validate(cfg)
        assert cfg.data.name == name


@pytest.mark.parametrize("override,key", [
    ("model.depth=0", "model.depth"), ("model.width=0", "model.width"), ("optimizer.lr=0", "optimizer.lr"),
    ("optimizer.lr=-0.1", "optimizer.lr"), ("train.batch_size=0", "train.batch_size"),
    ("model.dropout=1.0", "model.dropout"), ("model.dropout=-0.1", "model.dropout"),
    ("train.dtype=float16", "train.dtype"), ("seed=-1", "seed"), ("train.log_every=0", "train.log_every"),
])
def test_out_of_range_names_the_key(override, key, compose_cfg):
    cfg = compose_cfg(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_losses_that_need_one_hot_targets_are_refused(loss, compose_cfg):
    """The datasets give class labels: mse and bce used to pass validation and then fail in every
    job ("mse targets must have shape (1438, 10), got (1438,)")."""
    cfg = compose_cfg(f"train.loss={loss}")
    with pytest.raises(ConfigError, match=rf"train\.loss: '{loss}' needs one-hot .* use cross_entropy"):
        validate(cfg)


def test_optimizer_keyword_not_valid_for_that_optimizer(compose_cfg):
    cfg = compose_cfg("optimizer=sgd", "optimizer.betas=[0.9,0.99]")
    with pytest.raises(ConfigError, match="betas"):
        validate(cfg)


@pytest.mark.parametrize("override", ["model.depth=abc", "model.foo=1", "activation=nope", "optimizer.lr=fast"])
def test_wrong_key_or_type_fails_at_compose(override, compose_cfg):
    with pytest.raises(Exception) as info:
        compose_cfg(override)
    assert any(word in str(info.value) for word in ("depth", "foo", "nope", "lr"))


def test_config_hash_tracks_result_relevant_keys_only(compose_cfg):
    base = config_hash(compose_cfg())
    assert config_hash(compose_cfg()) == base
    assert config_hash(compose_cfg("model.depth=6")) != base
    assert config_hash(compose_cfg("seed=1")) != base
    assert config_hash(compose_cfg("tracking.uri=sqlite:////tmp/x.db")) == base


def test_flatten_run_name_and_optimizer_kwargs(compose_cfg):
    cfg = compose_cfg("activation=tanh", "init=xavier_uniform", "model.depth=20", "optimizer=adam")
    flat = flatten(identity(cfg))
    assert flat["model.depth"] == 20 and flat["optimizer.name"] == "adam" and "tracking.uri" not in flat
    assert run_name(cfg) == "tanh-xavier_uniform-d20-adam-s0"
    kw = optimizer_kwargs(cfg)
    assert kw["lr"] == 0.001 and kw["betas"] == (0.9, 0.999) and "momentum" not in kw
    assert optimizers.get("adam", **kw).hyper["betas"] == (0.9, 0.999)


def test_layer_key_padding():
    assert layer_key("grad_norm", 7, 21) == "grad_norm/layer_07"
    assert layer_key("act_var", 7, 101) == "act_var/layer_007"
    assert layer_key("act_var", 12, 99) == "act_var/layer_12"


def test_histogram_steps_are_logged_steps():
    steps = histogram_steps(460, 10, 3)
    assert steps[0] == 0 and steps[-1] == 460 and len(steps) == 5
    assert all(s % 10 == 0 for s in steps[:-1])
    assert histogram_steps(0, 10, 3) == [0]


def test_preflight_fast_compose_equals_hydra_compose(compose_cfg):
    from experiments import sweep
    jobs = sweep.compose_jobs(sweep.expand(["activation=tanh,relu", "model.depth=3,7", "optimizer.lr=0.2",
                                            "init=normal", "init.sigma_w=1.5"], True))
    assert len(jobs) == 4
    for overrides, cfg, cfg_hash in jobs:
        reference = compose_cfg(*overrides)
        assert cfg == reference and cfg_hash == config_hash(reference)
        assert cfg.model.depth in (3, 7) and cfg.optimizer.lr == 0.2 and cfg.init.sigma_w == 1.5


# Computed by main's code at 45a1836 (before the logged params were trimmed): the identity of a run
# is the whole config, whatever its MLflow params show.
@pytest.mark.parametrize("overrides,expected", [
    ((), "1bf51bbbcd69"),
    (("activation=relu", "init=he_uniform", "model.depth=20", "optimizer=adam"), "862472ee8908"),
    (("experiment=study", "model.depth=50", "activation=sigmoid", "init=uniform"), "aa55dc785ca5"),
    (("data=spirals", "optimizer=rmsprop", "init=normal", "init.sigma_w=2.0", "seed=3"), "f039be28426e"),
    (("activation=leaky_relu", "optimizer=momentum", "train.clip_norm=1.0", "data=gaussian"), "82d0c0a16edc"),
    # computed by main's code at bb64b3f (before activations declared their parameters)
    (("activation=leaky_relu", "activation.alpha=0.2"), "703f0f3a131f"),
    (("activation=tanh", "activation.alpha=0.2"), "357818d9ccbf"),
    (("activation=identity",), "f81c1e2082b7"),
    (("activation=softsign", "model.depth=3"), "2918a2862eb1"),
])
def test_config_hash_is_stable(compose_cfg, overrides, expected):
    assert config_hash(compose_cfg(*overrides)) == expected


def test_logged_params_leave_out_none_and_choices_not_made(compose_cfg):
    digits_adam = logged_params(OmegaConf.to_container(compose_cfg("optimizer=adam", "init=he_uniform"), resolve=True))
    assert "None" not in map(str, digits_adam.values())
    assert {"optimizer.name", "optimizer.lr", "optimizer.weight_decay", "data.name", "data.val_fraction",
            "init.name", "init.sigma_b", "activation.name", "model.depth", "seed"} <= set(digits_adam)
    for key in ("optimizer.momentum", "optimizer.rho", "data.noise", "data.teacher_depth", "data.n_samples",
                "init.sigma_w", "init.gain", "init.value", "activation.alpha", "train.clip_norm", "study"):
        assert key not in digits_adam
    spirals = logged_params(OmegaConf.to_container(compose_cfg(
        "data=spirals", "optimizer=momentum", "init=normal", "activation=leaky_relu"), resolve=True))
    assert {"data.noise", "data.n_samples", "data.n_classes", "optimizer.momentum", "init.sigma_w",
            "activation.alpha"} <= set(spirals)
    assert "data.teacher_depth" not in spirals and "optimizer.betas" not in spirals


# ------------------------------------------------------------ architecture keys (norm, residual)
# config_hash of configs that do not set the architecture keys, computed by the code before the
# keys existed (main at 45a1836): existing runs keep their hashes, so sweeps still skip them.
HASHES_BEFORE_ARCH_KEYS = [
    ((), "1bf51bbbcd69"),
    (("activation=relu", "init=he_uniform", "model.depth=50", "optimizer=adam"), "eb0a4250d1c8"),
    (("experiment=study", "activation=sigmoid", "init=uniform", "model.depth=2", "optimizer=sgd"), "9da18dc01200"),
    (("experiment=he2015", "init=he_normal"), "4922c7a6d0e5"),
    (("model.dropout=0.1", "seed=3", "data=spirals"), "e323bec390de"),
]


@pytest.mark.parametrize("overrides, expected", HASHES_BEFORE_ARCH_KEYS)
def test_plain_configs_keep_their_hashes(overrides, expected, compose_cfg):
    assert config_hash(compose_cfg(*overrides)) == expected
    # setting the keys to their defaults, or choosing arch=plain, is the same run
    assert config_hash(compose_cfg(*overrides, "arch=plain")) == expected
    assert config_hash(compose_cfg(*overrides, "model.norm=none", "model.residual=false")) == expected
    # residual_scale does nothing without residual connections
    assert config_hash(compose_cfg(*overrides, "model.residual_scale=0.5")) == expected


def test_architecture_keys_enter_the_hash(compose_cfg):
    hashes = {config_hash(compose_cfg(f"arch={a}")) for a in
              ("plain", "residual", "residual_scaled", "batchnorm", "layernorm", "residual_layernorm")}
    assert len(hashes) == 6
    assert config_hash(compose_cfg("model.residual=true", "model.residual_scale=0.5")) != \
        config_hash(compose_cfg("model.residual=true"))
    assert config_hash(compose_cfg("model.residual=true", "model.residual_scale=1.0")) == \
        config_hash(compose_cfg("arch=residual"))


def test_arch_group_sets_the_three_keys(compose_cfg):
    cfg = compose_cfg("arch=residual_scaled")
    assert (cfg.model.norm, cfg.model.residual) == ("none", True)
    assert cfg.model.residual_scale == pytest.approx(1 / 50 ** 0.5, rel=1e-15)
    cfg = compose_cfg("arch=residual_layernorm")
    assert (cfg.model.norm, cfg.model.residual, cfg.model.residual_scale) == ("layer", True, 1.0)
    # an explicit key after the group wins
    assert compose_cfg("arch=batchnorm", "model.norm=layer").model.norm == "layer"


@pytest.mark.parametrize("override, key", [
    ("model.norm=group", "model.norm"), ("model.norm=None", "model.norm"),
    ("model.residual_scale=0", "model.residual_scale"), ("model.residual_scale=-1", "model.residual_scale"),
    ("model.residual_scale=nan", "model.residual_scale"), ("model.residual_scale=inf", "model.residual_scale"),
])
def test_architecture_keys_out_of_range_name_the_key(override, key, compose_cfg):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg(override))


@pytest.mark.parametrize("override", ["model.residual=maybe", "model.residual_scale=big"])
def test_architecture_keys_are_typed(override, compose_cfg):
    with pytest.raises(Exception, match="residual"):
        compose_cfg(override)


def test_arch_kwargs_run_name_and_tags(compose_cfg):
    from experiments.config import arch_kwargs, arch_label
    from experiments.runner import tags_for
    plain = compose_cfg("activation=relu", "init=he_uniform", "model.depth=50", "optimizer=adam")
    assert arch_kwargs(plain) == {} and arch_label(plain) == "plain"
    assert run_name(plain) == "relu-he_uniform-d50-adam-s0"
    cfg = compose_cfg("activation=relu", "init=he_uniform", "model.depth=50", "optimizer=adam", "arch=residual_scaled")
    assert arch_kwargs(cfg) == {"residual": True, "residual_scale": pytest.approx(0.1414213562373095)}
    assert run_name(cfg) == "relu-he_uniform-d50-adam-res0.141-s0"
    cfg = compose_cfg("arch=residual_layernorm")
    assert arch_kwargs(cfg) == {"norm": "layer", "residual": True}
    assert run_name(cfg) == "tanh-xavier_uniform-d5-sgd-res-ln-s0"
    assert run_name(compose_cfg("arch=batchnorm")).endswith("-bn-s0")
    tags = tags_for(cfg, "abc")
    assert (tags["arch"], tags["norm"], tags["residual"], tags["residual_scale"]) == ("res-ln", "layer", True, 1.0)
    assert tags_for(plain, "abc")["arch"] == "plain"


def test_architecture_keys_are_sweepable(compose_cfg):
    from experiments import config, sweep
    jobs = sweep.compose_jobs(sweep.expand(["arch=plain,batchnorm", "model.residual_scale=0.5,1.0",
                                            "model.residual=true"], True))
    assert len(jobs) == 4
    for overrides, cfg, cfg_hash in jobs:
        reference = compose_cfg(*overrides)
        assert cfg == reference and cfg_hash == config_hash(reference)
    assert len({h for _, _, h in jobs}) == 4


def test_remedies_study_grid(compose_cfg):
    from experiments import config, sweep
    jobs = sweep.compose_jobs(sweep.expand(["experiment=remedies"], True))
    assert len(jobs) == 6 * 3 * 2
    cfgs = [cfg for _, cfg, _ in jobs]
    assert {c.model.depth for c in cfgs} == {50} and {c.model.width for c in cfgs} == {64}
    assert {c.data.name for c in cfgs} == {"digits"} and {c.study for c in cfgs} == {"remedies"}
    assert {(c.optimizer.name, c.optimizer.lr) for c in cfgs} == {("adam", 0.001)}
    assert {c.activation.name for c in cfgs} == {"sigmoid", "tanh", "relu"}
    assert {c.init.name for c in cfgs} == {"xavier_uniform", "he_uniform"}
    assert {config.arch_label(c) for c in cfgs} == {"plain", "res", "res0.141", "bn", "ln", "res-ln"}
    assert len({h for _, _, h in jobs}) == len(jobs)


def test_logged_params_show_residual_scale_only_with_residual(compose_cfg):
    plain = logged_params(OmegaConf.to_container(compose_cfg(), resolve=True))
    assert plain["model.norm"] == "none" and plain["model.residual"] is False
    assert "model.residual_scale" not in plain
    scaled = logged_params(OmegaConf.to_container(compose_cfg("arch=residual_scaled"), resolve=True))
    assert scaled["model.residual"] is True and scaled["model.residual_scale"] == pytest.approx(0.1414213562373095)


# ------------------------------------------------------- activations: class plus one YAML file
def test_each_activation_yaml_sets_its_name_and_its_parameters_defaults():
    """conf/activation/<name>.yaml holds exactly the name and the class's parameters, at the
    class's defaults: one file per registered activation, nothing else to edit."""
    yamls = {p.stem: OmegaConf.to_container(OmegaConf.load(p)) for p in (CONF / "activation").glob("*.yaml")}
    assert set(yamls) == set(activations.REGISTRY)
    for name, content in yamls.items():
        assert content == {"name": name, **activations.REGISTRY[name].params}, name


def test_activation_parameters_reach_the_network(compose_cfg):
    from experiments.runner import build
    from experiments.datasets import load
    cfg = compose_cfg("activation=leaky_relu", "activation.alpha=0.2", "model.depth=2", "data=spirals",
                      "data.n_samples=40")
    validate(cfg)
    assert activation_params(cfg) == {"alpha": 0.2}
    net, _ = build(cfg, load(cfg.data, seed=cfg.seed))
    assert net.activation.alpha == 0.2 and net.config["activation_params"] == {"alpha": 0.2}
    default = compose_cfg("activation=leaky_relu")
    assert activation_params(default) == {"alpha": 0.01}
    assert config_hash(default) != config_hash(cfg)
    tanh = compose_cfg("activation=tanh", "activation.alpha=0.2")  # accepted as before; tanh ignores it
    validate(tanh)
    assert activation_params(tanh) == {}


@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "relu"])
@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan", "inf"])
def test_bad_activation_parameter_names_the_key(compose_cfg, activation, alpha):
    """Out of range is an error also where the activation ignores the parameter (tanh, relu): it
    enters the config's identity, so it would make a new grid point of the same computation."""
    with pytest.raises(ConfigError, match=r"activation\.alpha: .*\[0, 1\)"):
        validate(compose_cfg(f"activation={activation}", f"activation.alpha={alpha}"))


def test_composed_configs_pickle(compose_cfg):
    """With the standard pickle too (multiprocessing spawn, concurrent.futures), not only cloudpickle."""
    import pickle

    cfg = compose_cfg("activation=leaky_relu", "activation.alpha=0.2")
    copy = pickle.loads(pickle.dumps(cfg))
    assert OmegaConf.to_container(copy) == OmegaConf.to_container(cfg) and copy.activation.alpha == 0.2


def test_parameters_an_activation_does_not_take_stay_out_of_new_identities(compose_cfg, monkeypatch):
    """A parameter declared after the hashes were frozen (beta here) enters only the identity of
    configs whose activation takes it; alpha stays in every identity (HASHED_ACTIVATION_PARAMS)."""
    from nncore.activations import Tanh

    class ScaledTanh(Tanh):
        name = "scaled_tanh"
        params = {"beta": 2.0}

    monkeypatch.setitem(activations.REGISTRY, "scaled_tanh", ScaledTanh)
    base = OmegaConf.to_container(compose_cfg(), resolve=True)
    tanh = OmegaConf.create({**base, "activation": {"name": "tanh", "alpha": 0.01, "beta": 2.0}})
    scaled = OmegaConf.create({**base, "activation": {"name": "scaled_tanh", "alpha": 0.01, "beta": 3.0}})
    assert identity(tanh)["activation"] == {"name": "tanh", "alpha": 0.01}
    assert config_hash(tanh) == config_hash(compose_cfg())
    assert identity(scaled)["activation"] == {"name": "scaled_tanh", "alpha": 0.01, "beta": 3.0}
    assert logged_params(OmegaConf.to_container(scaled))["activation.beta"] == 3.0
    assert "activation.alpha" not in logged_params(OmegaConf.to_container(scaled))


def test_output_directories_are_unique_to_the_microsecond():
    """Two runs or sweeps started in the same second must not share an output directory (the local
    records, the only copy during a store outage, would overwrite each other)."""
    import re
    from hydra import compose, initialize_config_dir

    from experiments.config import register
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
        run_dir, sweep_dir = cfg.hydra.run.dir, cfg.hydra.sweep.dir  # resolved now
    assert re.fullmatch(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", run_dir), run_dir
    assert re.fullmatch(r"multirun/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", sweep_dir), sweep_dir


# ------------------------------------------------------------ recurrent nets (arch=rnn | lstm | gru)
# config_hash of existing configs computed by the code before the recurrent and sequence keys existed
# (rnn branch at c4e135d): MLP runs keep their hashes, so sweeps still skip them.
HASHES_BEFORE_RECURRENT_KEYS = [
    ((), "1bf51bbbcd69"),
    (("arch=residual_layernorm", "activation=relu"), "1b2b2965635b"),
    (("arch=batchnorm", "data=mnist"), "54703c753d16"),
    (("experiment=remedies", "arch=residual_scaled"), "72eb506765f0"),
    # glorot2010 before issue 25 changed it (depth 4, batch 10, lr 0.3, 20 epochs): the same config, same hash
    (("experiment=glorot2010", "model.depth=5", "optimizer.lr=0.05", "train.epochs=10", "train.batch_size=32",
      "train.log_every=15"), "c3d98a9f044d"),
    (("experiment=phase_diagram",), "b61d72b1159b"),
    (("data=gaussian", "model.dropout=0.1", "optimizer=adam", "train.dtype=float32"), "3bd3ec427d4f"),
    (("experiment=seeds", "seed=2"), "4f74c8c603d6"),
    (("experiment=symmetry", "init=constant"), "e4390e7e0f76"),
]


@pytest.mark.parametrize("overrides, expected", HASHES_BEFORE_RECURRENT_KEYS)
def test_mlp_configs_keep_their_hashes(overrides, expected, compose_cfg):
    assert config_hash(compose_cfg(*overrides)) == expected
    # the recurrent and sequence keys do nothing for an MLP on vectors, whatever their values
    assert config_hash(compose_cfg(*overrides, "model.cell=none", "model.forget_bias=3", "model.recurrent_gain=2",
                                   "model.recurrent_init=identity", "data.length=7", "data.n_train=5",
                                   "data.n_val=5", "data.order=pixels")) == expected


def _recurrent(*overrides):
    return ("arch=rnn", "data=adding", *overrides)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_arch_group_makes_a_recurrent_net(cell, compose_cfg):
    from experiments.config import arch_label, is_recurrent, seq_len
    cfg = compose_cfg(f"arch={cell}", "data=adding", "data.length=25")
    validate(cfg)
    assert cfg.model.cell == cell and cfg.model.depth == 1 and is_recurrent(cfg) and arch_label(cfg) == cell
    assert cfg.train.loss == "mse" and seq_len(cfg) == 25
    # an explicit key after the group wins: two stacked layers
    assert compose_cfg(f"arch={cell}", "data=adding", "model.depth=2").model.depth == 2


def test_seq_digits_lengths(compose_cfg):
    from experiments.config import seq_len
    assert seq_len(compose_cfg("arch=gru", "data=seq_digits")) == 8
    assert seq_len(compose_cfg("arch=gru", "data=seq_digits", "data.order=pixels")) == 64
    assert seq_len(compose_cfg()) is None


@pytest.mark.parametrize("overrides, message", [
    (("arch=lstm",), r"^model\.cell: arch=lstm reads sequences, but data=digits gives vectors"),
    (("arch=gru", "data=spirals"), r"^model\.cell: arch=gru reads sequences, but data=spirals gives vectors"),
    (("data=adding",), r"^data\.name: data=adding gives sequences .* choose a recurrent arch"),
    (("data=seq_digits",), r"^data\.name: data=seq_digits gives sequences"),
    (_recurrent("train.loss=cross_entropy"), r"^train\.loss: data=adding is a regression .* use mse"),
    (("arch=rnn", "data=seq_digits", "train.loss=mse"), r"^train\.loss: 'mse' needs one-hot .* use cross_entropy"),
    (_recurrent("model.cell=transformer"), r"^model\.cell: must be one of none, rnn, lstm, gru"),
    (_recurrent("model.recurrent_init=eye"), r"^model\.recurrent_init: must be one of same, pytorch, .*identity"),
    (_recurrent("model.recurrent_gain=-1"), r"^model\.recurrent_gain: must be a finite number >= 0"),
    (_recurrent("model.recurrent_gain=nan"), r"^model\.recurrent_gain"),
    (_recurrent("model.forget_bias=inf"), r"^model\.forget_bias: must be finite"),
    (_recurrent("data.length=1"), r"^data\.length: must be an integer >= 2"),
    (_recurrent("data.n_train=0"), r"^data\.n_train: must be an integer >= 1"),
    (_recurrent("data.n_val=0"), r"^data\.n_val: must be an integer >= 1"),
    (("arch=rnn", "data=seq_digits", "data.order=columns"), r"^data\.order: must be one of rows, pixels"),
    (_recurrent("model.norm=layer"), r"^model\.norm: a recurrent net \(cell rnn\) takes no normalization"),
    (_recurrent("model.residual=true"), r"^model\.residual: a recurrent net"),
    (_recurrent("model.dropout=0.1"), r"^model\.dropout: a recurrent net"),
    (_recurrent("model.forget_bias=1"), r"^model\.forget_bias: applies to cells lstm and gru only, not to cell rnn"),
    # keys that would not change the network are refused, not silently left out of the run's identity
    (("model.forget_bias=1",), r"^model\.forget_bias: applies to cells lstm and gru only, not to an MLP"),
    (("model.recurrent_init=identity",), r"^model\.recurrent_init: applies to recurrent nets only, not to an MLP"),
    (_recurrent("model.recurrent_gain=0.5"),
     r"^model\.recurrent_gain: applies to model\.recurrent_init=orthogonal or identity only, not to "
     r"model\.recurrent_init=same"),
    (_recurrent("model.recurrent_init=normal", "model.recurrent_gain=0.5"),
     r"^model\.recurrent_gain: .* not to model\.recurrent_init=normal"),
    (_recurrent("data.length=100000"), r"^data\.length: must be < 100000"),
    (_recurrent("init=pytorch", "init.sigma_b=0.1"), r"^init\.sigma_b: init=pytorch draws every bias"),
    (("arch=lstm", "data=adding", "activation=relu"), r"^activation\.name: applies to cell rnn only"),
    (("init=pytorch",), r"^init\.name: unknown initializer 'pytorch' for an MLP \(pytorch: recurrent nets only\)"),
])
def test_recurrent_config_errors_are_one_line_naming_the_key(overrides, message, compose_cfg):
    with pytest.raises(ConfigError, match=message) as info:
        validate(compose_cfg(*overrides))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override", ["model.recurrent_gain=big", "model.forget_bias=one",
                                      "data.length=long", "data.n_train=many"])
def test_recurrent_keys_are_typed(override, compose_cfg):
    with pytest.raises(Exception, match=override.split("=")[0].split(".")[1]):
        compose_cfg(*_recurrent(override))


def test_recurrent_keys_enter_the_hash_only_where_they_change_the_network(compose_cfg):
    base = config_hash(compose_cfg(*_recurrent()))
    changed = [_recurrent("model.cell=lstm"), _recurrent("model.recurrent_init=identity"), _recurrent("data.length=51"),
               _recurrent("data.n_train=10"), _recurrent("data.n_val=10"), _recurrent("init=pytorch"),
               _recurrent("model.width=32"), _recurrent("model.depth=2")]
    hashes = {config_hash(compose_cfg(*o)) for o in changed}
    assert base not in hashes and len(hashes) == len(changed)
    # the gain scales only an orthogonal or identity W_hh
    assert config_hash(compose_cfg(*_recurrent("model.recurrent_gain=2"))) == base
    identity_init = config_hash(compose_cfg(*_recurrent("model.recurrent_init=identity")))
    assert config_hash(compose_cfg(*_recurrent("model.recurrent_init=identity", "model.recurrent_gain=0.5"))) \
        != identity_init
    lstm = config_hash(compose_cfg("arch=lstm", "data=adding"))
    assert config_hash(compose_cfg("arch=lstm", "data=adding", "model.forget_bias=1")) != lstm
    # seq_digits does not read the adding problem's keys, and adding not seq_digits' order
    digits = config_hash(compose_cfg("arch=rnn", "data=seq_digits"))
    assert config_hash(compose_cfg("arch=rnn", "data=seq_digits", "data.length=9")) == digits
    assert config_hash(compose_cfg("arch=rnn", "data=seq_digits", "data.order=pixels")) != digits
    assert config_hash(compose_cfg(*_recurrent("data.order=pixels"))) == base


def test_recurrent_run_names_tags_and_params(compose_cfg):
    from experiments.runner import tags_for
    cfg = compose_cfg("arch=rnn", "data=adding", "activation=relu", "init=normal", "model.recurrent_init=identity",
                      "data.length=100", "optimizer=sgd")
    assert run_name(cfg) == "rnn-relu-normal1-identity-T100-sgd-s0"
    tags = tags_for(cfg, "abc")
    assert (tags["cell"], tags["seq_len"], tags["recurrent_init"], tags["arch"]) == ("rnn", 100, "identity", "rnn")
    lstm = compose_cfg("arch=lstm", "data=adding", "init=pytorch", "model.forget_bias=1", "optimizer=adam", "seed=1")
    assert run_name(lstm) == "lstm-pytorch-fb1-T50-adam-s1"
    assert run_name(compose_cfg("arch=gru", "data=seq_digits", "data.order=pixels", "model.depth=2")) == \
        "gru-xavier_uniform-L2-T64-sgd-s0"
    assert tags_for(lstm, "abc")["recurrent_init"] == "same"
    params = logged_params(OmegaConf.to_container(lstm, resolve=True))
    assert {"model.cell", "model.recurrent_init", "model.forget_bias", "data.length", "data.n_train",
            "data.n_val"} <= set(params)
    assert "model.recurrent_gain" not in params and "data.order" not in params and "data.n_samples" not in params
    assert not {"model.dropout", "model.norm", "model.residual"} & set(params)  # a recurrent net has none
    mlp = logged_params(OmegaConf.to_container(compose_cfg(), resolve=True))
    assert not {"model.cell", "model.forget_bias", "data.length", "data.order"} & set(mlp)
    # an MLP's tags say it has no cell
    assert tags_for(compose_cfg(), "abc")["cell"] == "none"


def test_recurrent_keys_are_sweepable(compose_cfg):
    from experiments import sweep
    jobs = sweep.compose_jobs(sweep.expand(["arch=gru,lstm", "data=adding", "data.length=10,25",
                                            "model.forget_bias=0,1"], True))
    assert len(jobs) == 8
    for overrides, cfg, cfg_hash in jobs:
        reference = compose_cfg(*overrides)
        assert cfg == reference and cfg_hash == config_hash(reference)
    assert len({h for _, _, h in jobs}) == 8


def test_preflight_refuses_a_recurrent_arch_on_vectors():
    from experiments import sweep
    with pytest.raises(sweep.PreflightError, match=r"model\.cell: arch=lstm reads sequences"):
        sweep.compose_jobs(sweep.expand(["arch=lstm", "data=digits,adding"], True))


def test_w_hh_drawn_by_its_own_initializer_logs_and_names_its_parameters(compose_cfg):
    """recurrent_init=normal draws W_hh with init.sigma_w: it is logged and in the run name even when
    init (W_ih's) takes no sigma_w; an orthogonal W_hh names its gain instead."""
    cfg = compose_cfg(*_recurrent("init=pytorch", "model.recurrent_init=normal", "init.sigma_w=2.0"))
    validate(cfg)
    params = logged_params(OmegaConf.to_container(cfg, resolve=True))
    assert params["init.sigma_w"] == 2.0 and "model.recurrent_gain" not in params
    assert run_name(cfg) == "rnn-tanh-pytorch-normal2-T50-sgd-s0"
    cfg = compose_cfg(*_recurrent("init=pytorch", "model.recurrent_init=orthogonal", "model.recurrent_gain=0.9"))
    validate(cfg)
    params = logged_params(OmegaConf.to_container(cfg, resolve=True))
    assert "init.sigma_w" not in params and params["model.recurrent_gain"] == 0.9
    assert run_name(cfg) == "rnn-tanh-pytorch-orthogonal0.9-T50-sgd-s0"
