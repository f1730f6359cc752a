"""Frozen dataclass configs, one per command; the CLI flags mirror these fields one-to-one.

``learn`` (train, evaluate, recipes), ``media`` (predict, preprocess, demo, report, merge), ``deploy``
(attack, serve, export, calibrate); ``fields`` builds any of them from parsed flags.

    >>> cfg = config_from_mapping(EvalConfig, {"checkpoint": "best.pt", "eps": (2/255,), "steps": 20})
    >>> cfg.sweep.steps
    20
"""

from deepshield.config.deploy import CalibrateConfig, ExportConfig, ServeConfig, VideoAttackConfig
from deepshield.config.fields import config_fields, config_from_mapping
from deepshield.config.learn import (
    THOROUGH,
    EvalConfig,
    RecipeError,
    SweepSpec,
    TrainConfig,
    default_alpha,
    load_recipe,
    parse_fraction,
)
from deepshield.config.media import (
    DemoConfig,
    MergeConfig,
    PredictConfig,
    PreprocessConfig,
    ReportConfig,
)

__all__ = [
    "THOROUGH",
    "CalibrateConfig",
    "DemoConfig",
    "EvalConfig",
    "ExportConfig",
    "MergeConfig",
    "PredictConfig",
    "PreprocessConfig",
    "RecipeError",
    "ReportConfig",
    "ServeConfig",
    "SweepSpec",
    "TrainConfig",
    "VideoAttackConfig",
    "config_fields",
    "config_from_mapping",
    "default_alpha",
    "load_recipe",
    "parse_fraction",
]
