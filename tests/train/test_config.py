"""Config files, ``key=value`` overrides and the learning-rate schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from abn.train.config import ConfigError, TrainConfig, apply_overrides, load_config, to_toml

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_overrides_are_parsed_as_toml_values() -> None:
    cfg = load_config(None, [
        "lr=0.05", "epochs=3", "compile=true", "milestones=[0.3, 1]",
        "model_kwargs.mechanism=multiply", "name=abc", "input-size=[64, 64]",
    ])  # fmt: skip
    assert cfg.lr == 0.05 and cfg.epochs == 3 and cfg.compile is True
    assert cfg.milestones == [0.3, 1.0]
    assert cfg.model_kwargs == {"mechanism": "multiply"}
    assert cfg.name == "abc" and cfg.input_size == [64, 64]


def test_int_is_accepted_for_a_float_but_not_the_reverse() -> None:
    assert load_config(None, ["lr=1"]).lr == 1.0
    with pytest.raises(ConfigError, match="epochs expects int"):
        load_config(None, ["epochs=1.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nope=1", "unknown config key"),
        ("lr", "not key=value"),
        ("epochs=0", "epochs must be"),
        ("precision=fp8", "precision is"),
        ("compile=maybe", "compile expects"),
        ("foo.bar=1", "only model_kwargs"),
        ("compile=true cuda_graphs=true", "compile and cuda_graphs exclude each other"),
        ("augment=mixup", "augment is one of paper, random-resized-crop"),
        ("crop_scale=[0.5,0.2]", "crop_scale is"),
        ("input_size=[0,0]", "input_size is"),
        ("momentum=-1", r"momentum must be in \[0, 1\)"),
        ("gamma=-5", "gamma"),
        ('recipe="jpeg"', "recipe is '' or one of cifar, imagenet"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split(" "))


def test_step_schedule_divides_by_ten_at_half_and_three_quarters() -> None:
    cfg = load_config(None, ["epochs=300", "lr=0.1"])
    assert cfg.milestone_epochs() == [150, 225]
    assert [cfg.lr_at(e) for e in (0, 149)] == [0.1, 0.1]
    assert cfg.lr_at(150) == pytest.approx(0.01)
    assert cfg.lr_at(224) == pytest.approx(0.01)
    assert cfg.lr_at(299) == pytest.approx(0.001)


def test_short_runs_start_at_the_full_rate() -> None:
    one = load_config(None, ["epochs=1", "lr=0.1"])
    assert one.milestone_epochs() == [1, 1] and one.lr_at(0) == 0.1  # round(0.5) is 0
    two = load_config(None, ["epochs=2", "lr=0.1"])
    assert [two.lr_at(e) for e in (0, 1)] == pytest.approx([0.1, 0.01])
    assert load_config(None, ["epochs=10", "milestones=[0]"]).lr_at(0) == pytest.approx(0.01)


def test_warmup_epochs_start_at_a_tenth_of_the_rate() -> None:
    cfg = TrainConfig(epochs=20, lr=0.1, warmup_epochs=1)
    assert [cfg.lr_at(e) for e in (0, 1, 9, 10, 15)] == pytest.approx([0.01, 0.1, 0.1, 0.01, 0.001])
    assert TrainConfig(epochs=20).lr_at(0) == 0.1  # off by default, as in the paper's tables
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(epochs=4, warmup_epochs=4)


def test_to_toml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ['model_kwargs.stem="small"', "name=x", 'data_root=/a "b"'])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


def test_apply_overrides_does_not_mutate_its_input() -> None:
    data = {"model_kwargs": {"a": 1}}
    apply_overrides(data, ["model_kwargs.b=2"])
    assert data == {"model_kwargs": {"a": 1}}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.momentum == 0.9
    # the paper's CompCars schedule: lr ÷10 at epochs 25 and 35 of 50; elsewhere 50% / 75%
    compcars = path.stem.startswith("compcars")
    assert cfg.milestones == ([0.5, 0.7] if compcars else [0.5, 0.75])
    if compcars:
        assert cfg.milestone_epochs() == [25, 35] and (cfg.epochs, cfg.batch_size) == (50, 32)
    assert cfg.weight_decay == (5e-4 if "wrn" in cfg.model else 1e-4)
    if "wrn" in cfg.model:  # the reference code's "WRN-28-10-drop"
        assert cfg.model_kwargs == {"drop_rate": 0.3}
    if cfg.data.startswith("celeba"):
        assert cfg.variant == "abn_multitask"
        if path.stem != "celeba-hq-resnet20":  # the default face models' from-scratch recipe
            assert (cfg.epochs, cfg.lr) == (10, 0.01)  # the paper's CelebA recipe


RECIPE_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_value_says_where_it_comes_from(path: Path) -> None:
    """Each recipe value carries a comment naming its source: paper, reference code or ours."""
    for line in path.read_text().splitlines():
        key, _, rest = line.partition("=")
        if key.strip() in RECIPE_KEYS:
            comment = rest.partition("#")[2]
            assert any(s in comment for s in ("paper", "reference code", "ours")), line


def test_paper_runs_have_configs() -> None:
    names = {p.stem for p in CONFIGS}
    for prefix in ("cifar10-", "cifar100-", "svhn-", "imagenet-", "compcars-", "celeba-",
                   "cifar10-pack", "imagenette-", "celeba-hq-"):  # fmt: skip
        assert any(n.startswith(prefix) for n in names), prefix


def test_random_resized_crop_is_opt_in() -> None:
    assert load_config(None, []).resized_crop() is None
    cfg = load_config(None, ['augment="random-resized-crop"', "crop_scale=[0.35, 1]"])
    assert cfg.resized_crop() == (0.35, 1.0)
