"""Training configuration: one dataclass, read from TOML, every value overridable.

``load_config("configs/cifar10-resnet110.toml", overrides=["lr=0.05", "model_kwargs.mechanism=multiply"])``
Override values are parsed as TOML values (``3``, ``0.1``, ``true``, ``[0.5, 0.75]``,
``"text"``); a bare word that is not valid TOML is taken as a string.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from abn.precision import PRECISIONS

AUGMENTS = ("paper", "random-resized-crop")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key at fault."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (see ``configs/*.toml``)."""

    name: str = "run"
    # model
    model: str = "resnet20"
    variant: str = "abn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # data
    data: str = "cifar10"
    data_root: str = ""  # "" → $ABN_DATA_ROOT or ./data
    train_split: str = ""  # "" → the dataset's own train split
    test_split: str = ""  # "" → the dataset's own evaluation split
    input_size: list[int] = field(default_factory=list)  # [] → the dataset's size
    # preprocessing: "" → the dataset's; e.g. "cifar" (pad 4 + crop + flip) for small images
    # in an image folder, whose default is "imagenet" (resize, crop, flip)
    recipe: str = ""
    # training crop: "paper" (the recipe's) | "random-resized-crop" (imagenet recipe: an
    # Inception-style crop of crop_scale of the area, aspect 3/4–4/3; evaluation unchanged)
    augment: str = "paper"
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    loader: str = "auto"  # auto | memory | folder
    workers: int = 4
    limit_train: int = 0  # 0 → all; else a deterministic sample of this size
    limit_test: int = 0
    # optimisation (paper: SGD momentum 0.9, lr 0.1 ÷10 at 50% and 75% of the epochs)
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of epochs
    gamma: float = 0.1
    warmup_epochs: int = 0  # first epochs at lr·gamma (He et al.'s warm-up for deep CIFAR ResNets)
    # speed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where native, else fp32) | bf16 | fp32
    channels_last: str = "auto"  # auto (GPU; CPU in fp32) | true | false
    compile: bool = False
    cuda_graphs: bool = False  # replay each training step as one CUDA graph (abn/train/graphs.py)
    # bookkeeping
    seed: int = 0
    out: str = "runs"
    eval_every: int = 1
    quiet: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run can use."""
        from abn.data.transforms import RECIPES

        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr >= 0, "lr must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.limit_train >= 0 and self.limit_test >= 0, "limits must be >= 0"),
            (self.eval_every >= 1, "eval_every must be >= 1"),
            (0 <= self.warmup_epochs < self.epochs, "warmup_epochs must be in [0, epochs)"),
            (all(0 <= m <= 1 for m in self.milestones), "milestones are fractions in [0, 1]"),
            (self.loader in ("auto", "memory", "folder"), "loader is auto, memory or folder"),
            (self.precision in PRECISIONS, "precision is auto, bf16 or fp32"),
            (self.channels_last in ("auto", "true", "false"), "channels_last is auto/true/false"),
            (
                len(self.input_size) in (0, 2) and all(v >= 1 for v in self.input_size),
                "input_size is [] or [height, width], both >= 1",
            ),
            (self.recipe in ("", *RECIPES), f"recipe is '' or one of {', '.join(RECIPES)}"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (0 < self.gamma <= 1, "gamma (the learning-rate factor at a milestone) is in (0, 1]"),
            (self.augment in AUGMENTS, f"augment is one of {', '.join(AUGMENTS)}"),
            (
                len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
                "crop_scale is [lo, hi] with 0 < lo <= hi <= 1",
            ),
            (not (self.compile and self.cuda_graphs), "compile and cuda_graphs exclude each other"),
            (bool(self.name) and "/" not in self.name, "name must be a non-empty folder name"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def resized_crop(self) -> tuple[float, float] | None:
        """The random resized crop's area range, or ``None`` for the recipe's own crop."""
        if self.augment == "random-resized-crop":
            return (self.crop_scale[0], self.crop_scale[1])
        return None

    def milestone_epochs(self) -> list[int]:
        """Epochs (0-based) at whose start the learning rate is multiplied by ``gamma``.

        A milestone past 0 never rounds to epoch 0: a 1-epoch run trains at ``lr``, not ``lr/10``.
        """
        return [max(1, round(m * self.epochs)) if m > 0 else 0 for m in self.milestones]

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``: step schedule, after ``warmup_epochs`` at lr·gamma."""
        if epoch < self.warmup_epochs:
            return self.lr * self.gamma
        drops = sum(epoch >= m for m in self.milestone_epochs())
        return self.lr * self.gamma**drops

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_dir(self) -> Path:
        return Path(self.out) / self.name


FIELDS = {f.name: f for f in fields(TrainConfig)}


def _type_of(name: str) -> Any:
    hints = typing.get_type_hints(TrainConfig)
    return hints[name]


def _coerce(key: str, value: Any) -> Any:
    """Check (and where lossless, convert) ``value`` for field ``key``."""
    expected = _type_of(key)
    origin = typing.get_origin(expected) or expected
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(expected)
        if item is float:
            value = [
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value
            ]
        if all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            return value
    elif origin is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
        return value
    if origin is str and isinstance(value, bool):  # channels_last = true
        return str(value).lower()
    type_name = getattr(expected, "__name__", None) or str(expected)
    if isinstance(expected, types.GenericAlias):
        type_name = str(expected)
    raise ConfigError(f"{key} expects {type_name}, got {value!r}")


def parse_value(text: str) -> Any:
    """A TOML value (``0.1``, ``true``, ``[1, 2]``, ``"s"``), or the raw text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (``model_kwargs.x=1`` sets one kwarg) to a config dict."""
    data = {**data, "model_kwargs": dict(data.get("model_kwargs", {}))}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        value = parse_value(text.strip())
        head, dot, sub = key.partition(".")
        if dot:
            if head != "model_kwargs" or not sub:
                raise ConfigError(f"unknown key {key!r}: only model_kwargs.<name> takes a dot")
            data["model_kwargs"][sub] = value
        else:
            data[key] = value
    return data


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a validated config; unknown keys and wrong types raise :class:`ConfigError`."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(FIELDS)}"
        )
    return TrainConfig(**{k: _coerce(k, v) for k, v in data.items()})


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a TOML config file, with a clear error when missing or malformed."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config (or the defaults) and apply ``key=value`` overrides."""
    data = read_toml(path) if path else {}
    if path and "name" not in data:
        data["name"] = Path(path).stem
    return config_from_dict(apply_overrides(data, overrides or []))


def to_toml(config: TrainConfig) -> str:
    """The config as TOML text (written to ``runs/<name>/config.toml``)."""
    lines = []
    tables = []
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{key}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")
