"""Training: configs, the ABN loss, the epoch loop, DDP, resumable state, metrics logs."""

from .config import ConfigError, TrainConfig, apply_overrides, load_config
from .loss import LossParts, abn_loss
from .run import RunResult, TrainError, train
from .state import ResumeError, resolve_resume

__all__ = [
    "ConfigError",
    "LossParts",
    "ResumeError",
    "RunResult",
    "TrainConfig",
    "TrainError",
    "abn_loss",
    "apply_overrides",
    "load_config",
    "resolve_resume",
    "train",
]
