"""Configs of training and evaluation, and training recipes (YAML files of train settings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from deepshield.errors import ConfigError


def default_alpha(eps: float) -> float:
    """The attack step when none is given: ε/4 (PGD, PGD-AT, TRADES, MART, the video attack)."""
    return eps / 4

@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``deepshield train``. ε, α in [0, 1] pixel units."""

    dataset: str = "synthetic"          # synthetic | catalog:PATH[:split]
    backbone: str = "small_cnn"
    pretrained: str | None = None       # local state-dict path, "imagenet" (offline weights), or "timm"
    image_size: int = 64
    adv: str = "none"                   # none | pgd | fgsm-rs | n-fgsm | trades | mart
    eps: float = 4 / 255
    alpha: float | None = None          # default: the objective's (PGD ε/4, N-FGSM ε)
    steps: int = 7
    trades_beta: float | None = None    # TRADES/MART β (default 6); an error with other objectives
    random_start: bool = True           # the training attack's random start (PGD, TRADES, MART)
    adv_bn: str | None = None           # BatchNorm mode while crafting: eval | train (default: the method's)
    label_smoothing: float = 0.0
    act: str | None = None              # swap the backbone's ReLU/ReLU6 for silu | softplus | gelu
    adv_warmup_epochs: int = 0
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    out: str = "runs/train"
    resume: bool = False
    tensorboard: bool = False
    smoke: bool = False
    workers: int = 0
    amp: bool | None = None             # None: auto (CUDA bf16/fp16; CPU bf16 only with native bf16)
    probe: bool = True                  # measure threads, precision and layout (training.precision)
    compile: bool = False               # torch.compile the training forward
    device: str = "auto"
    n_train: int = 4000                 # synthetic dataset sizes
    n_val: int = 1000
    frames_per_video: int = 8
    freeze_epochs: int = 0
    unfreeze_every: int = 1
    backbone_lr_scale: float = 0.1      # backbone LR = lr * scale when fine-tuning pretrained weights
    cache: bool = True                  # memory-mapped decoded-crop cache for catalog datasets
    cache_dir: str | None = None        # default: OUT/cache
    balance: bool = False               # class-balanced frame sampling
    val_attack_steps: int = 10
    max_val: int | None = None          # catalog: validate on a seeded, label-balanced subset of N videos
    patience: int | None = None         # stop when best_metric has not improved for N epochs
    best_metric: str | None = None      # default: val_robust_score (clean+PGD) if adversarial, else val_auc
    threshold_rule: str = "eer"         # the checkpoint's threshold, chosen on validation: eer, fpr5, fpr1
    augment: str = "faces"              # training augmentation: faces | none (see data.transforms.AUGMENTS)
    max_train: int | None = None        # catalog: at most this many training videos (a seeded subset)
    pseudo_fakes: str | None = None     # catalog: self-blended fakes from the reals (sbi; data.pseudo_fakes)
    pseudo_fake_ratio: float = 1.0      # fraction of fake samples that are pseudo-fakes; 1 = reals only
    config: str | None = None           # the recipe (YAML) the run was started from
    progress: bool = True

    def objective_settings(self, eps: float | None = None) -> dict[str, Any]:
        """The training objective's settings (training.objectives.AdvParams) at ``eps`` (default: ε)."""
        return {"eps": self.eps if eps is None else eps, "alpha": self.alpha, "steps": self.steps,
                "beta": self.trades_beta, "random_start": self.random_start, "bn": self.adv_bn,
                "smoothing": self.label_smoothing}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_fraction(text: str) -> float:
    """``"2/255"``, ``"1.25/255"`` or ``"0.008"`` -> float; ValueError otherwise."""
    num, _, den = text.strip().partition("/")
    value = float(num) / float(den) if den else float(num)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


class RecipeError(ConfigError):
    """A recipe file that cannot be used; the message names the file and the key."""


def read_yaml(path: Path, what: str, error: type[ConfigError], hint: str) -> Any:
    """The parsed YAML of ``path`` (``{}`` when empty); ``error`` naming ``what`` and the file when it is
    missing (with ``hint``) or not valid YAML."""
    import yaml

    if not path.is_file():
        raise error(f"{what} {path}: not found; {hint}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise error(f"{what} {path}: not valid YAML ({str(err).splitlines()[0]})") from None


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A training recipe (YAML mapping of TrainConfig fields; dashes or underscores) -> field values.

    ``eps`` and ``alpha`` may be written as fractions ("2/255"). Raises ``RecipeError`` naming an
    unknown key or a file that is missing or not a mapping.
    """
    path = Path(path)
    data = read_yaml(path, "recipe", RecipeError, "pass a YAML file such as recipes/dfdc-faces-standard.yaml")
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path}: expected a mapping of settings (key: value)")
    names = {f.name: f for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names or name in ("config", "resume"):
            raise RecipeError(f"recipe {path}: unknown key {key!r}; valid keys are the train flags: "
                              + ", ".join(sorted(n for n in names if n not in ("config", "resume"))))
        if name in ("eps", "alpha") and isinstance(value, str):
            try:
                value = parse_fraction(value)
            except (ValueError, ZeroDivisionError):
                raise RecipeError(f"recipe {path}: {key}: {value!r} is not a number like 2/255") from None
        out[name] = value
    return out


# The full budget ``deepshield evaluate --thorough`` restores (the defaults are a first look).
THOROUGH = {"square_queries": 1000, "sanity_n": 256}


@dataclass(frozen=True)
class SweepSpec:
    """What ``deepshield evaluate`` attacks with. ε in [0, 1] pixel units (L∞) or L2 pixel units.

    ``steps``/``restarts``: iterative attacks' budget (APGD takes at least 2 restarts);
    ``square_queries``: Square's model queries per sample; ``early_stop``: attack only correct samples
    and stop once fooled (AutoAttack protocol);
    ``sanity_n``: samples the sanity checks' extra attacks use; ``gallery``: faces kept for the report;
    ``seed``: attacks' random starts and the evaluated subset; ``options``: extra per-attack settings
    as ``(attack, key, value)`` triples (``--attack-option square.p_init=0.5``), so a new attack's
    hyper-parameter needs no new field here. ``reuse`` (with ``early_stop``): beyond the first
    ``sanity_n`` samples, a face already fooled at a smaller ε or by a cheaper attack is not attacked
    again (its fooling point lies inside the larger ball), so each row counts a face as fooled by this
    attack or a cheaper one at ≤ ε;
    the first ``sanity_n`` faces are attacked independently, for the sanity checks. The defaults are a
    first look (minutes on a CPU); :meth:`thorough` is the full budget (``deepshield evaluate --thorough``).
    """

    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    norm: str = "linf"
    steps: int = 10
    restarts: int = 1
    seed: int = 0
    square_queries: int = 200
    early_stop: bool = True
    sanity_n: int = 128
    gallery: int = 6
    options: tuple[tuple[str, str, Any], ...] = ()
    reuse: bool = True

    def __post_init__(self) -> None:
        if not self.eps:
            raise ConfigError("--eps needs at least one budget, e.g. --eps 1/255,4/255")
        for e in self.eps:
            if e < 0:
                raise ConfigError(f"--eps {e}: ε must be >= 0")
            if self.norm == "linf" and e > 1:
                raise ConfigError(f"--eps {e:g}: L∞ ε is in [0, 1] pixel units; did you mean {e:g}/255?")
        if not self.attacks:
            raise ConfigError("--attacks needs at least one attack, e.g. --attacks fgsm,pgd")

    def thorough(self) -> SweepSpec:
        """This spec with at least the full budget of the sanity checks (``THOROUGH``)."""
        return replace(self, **{k: max(getattr(self, k), v) for k, v in THOROUGH.items()})

    def options_for(self, attack: str) -> dict[str, Any]:
        """The ``--attack-option`` settings given for ``attack``."""
        return {key: value for name, key, value in self.options if name == attack}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(attacks=list(self.attacks), eps=list(self.eps), options=[list(o) for o in self.options])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept.update(attacks=tuple(kept.get("attacks", cls.attacks)), eps=tuple(kept.get("eps", cls.eps)),
                    options=tuple(tuple(o) for o in kept.get("options", ())))
        return cls(**kept)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``deepshield evaluate``: what to evaluate, on what, and the attack sweep."""

    checkpoint: str
    dataset: str = "synthetic"          # synthetic | catalog:PATH[:split]
    cross_dataset: tuple[str, ...] = () # more datasets scored clean (evaluation.cross_dataset)
    cross_sweep: bool = False           # also run the attack sweep on cross_dataset
    sweep: SweepSpec = field(default_factory=SweepSpec)
    batch_size: int = 128
    n_test: int = 1000                  # synthetic test images
    max_videos: int | None = None       # catalog: a seeded, label-balanced subset of this many videos
    out: str | None = None              # default: next to the checkpoint (eval/ or eval_<catalog>/)
    device: str = "auto"
    sanity: bool = True
    progress: bool = True
    reencode: tuple[str, ...] = ("jpeg:75", "h264:23")  # score clean and adversarial faces after these
    surrogate: str | None = None        # also craft on this checkpoint and score the evaluated one (transfer)
    corruptions: bool = True            # rows under natural corruptions (JPEG, blur, noise, downscale)
    defense: str | None = None          # input defenses, e.g. "jpeg:75,median:3" (threats.defenses)
    adaptive: bool = True               # attack defenses adaptively (BPDA / EOT); False: flagged
    eot: int | None = None              # EOT samples for attacks; None: 8 when the model is randomized
    ensemble: tuple[str, ...] = ()      # more checkpoints averaged with --checkpoint
    thorough: bool = False              # the full sanity-check budget (SweepSpec.thorough), not a first look

    def __post_init__(self) -> None:
        if self.thorough:
            object.__setattr__(self, "sweep", self.sweep.thorough())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sweep"] = self.sweep.to_dict()
        return d
