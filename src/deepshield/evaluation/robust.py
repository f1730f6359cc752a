"""Robust evaluation: clean metrics and an attack × ε sweep in one pass over the data.

Robust accuracy follows the AutoAttack protocol (Croce & Hein, ICML 2020): only the samples the model
classifies correctly are attacked (a misclassified sample is already an error at every ε), attacks stop
on a sample as soon as it is fooled, and the ``worst-case`` rows count a sample as robust only if no
attack fooled it. The sweep is a cascade (``SweepSpec.reuse``, :class:`_Reuse`): ε ascending, cheap
attacks first (FGSM, PGD, APGD, then black-box), a face fooled at a smaller ε or by a cheaper attack
keeps its fooling point (it lies inside every larger ball), and only the survivors are attacked, each
attack from its own fresh start; so expensive attacks run only on the survivors, and every row is at
least as strong as an independent run. (Warm-starting a survivor from the point reached at the smaller
ε, which ``Attack`` supports, was weaker on the PGD-AT face model: faces in flat regions stayed stuck
there, 9 of 64 crops surviving at 8/255 against 1 with fresh starts.)
The first ``spec.sanity_n`` faces are attacked independently at every (attack, ε), so the sanity
checks (``checks.py``) compare independent runs. Metrics under attack (AUC, AP, EER, video and
per-method numbers) are computed on the same adversarial points; with early stopping a fooled sample
sits just across the threshold, so they are an upper bound of what a loss-maximizing attacker reaches.
``SweepSpec(early_stop=False)`` attacks every sample for all its steps instead (slower; tighter AUC
under attack).

    >>> result, images = sweep(model, dataset, SweepSpec(attacks=("pgd", "square"), eps=(4/255,)), device)
    >>> result.robust[0].metrics.acc, result.worst_case[0].metrics.acc
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepshield.attacks import ITERATIVE, Attack, attacks_of_kind, build_eval_attack
from deepshield.config import SweepSpec
from deepshield.contracts.rows import Gallery, GalleryItem, Metrics, SweepRow
from deepshield.evaluation.formatting import row_key
from deepshield.evaluation.metrics import detection_metrics, sample_methods
from deepshield.evaluation.results import GalleryImages, Samples, SweepResult
from deepshield.progress import progress as progress_bar
from deepshield.runtime import eval_mode, fake_probs
from deepshield.training.loops import split_batch


def make_attack(name: str, eps: float, spec: SweepSpec, steps: int | None = None,
                restarts: int | None = None) -> Attack:
    """A registered attack configured for evaluation by ``spec`` (``steps``/``restarts`` override it)."""
    spec = replace(spec, steps=steps or spec.steps, restarts=restarts or spec.restarts)
    return build_eval_attack(name, eps, spec)


def _channels_last(model: nn.Module) -> bool:
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last) \
        and not weight.is_contiguous()


def attack_correct(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack,
    clean_probs: torch.Tensor | None = None, only_correct: bool = True,
    attack_model: nn.Module | None = None, mask: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attack the samples the model gets right; the others keep x. Returns (x_adv, P(fake) on x_adv).

    ``attack_model``: what the attack computes gradients on, when it differs from the scored model (a
    defense's BPDA/EOT version, or a surrogate for transfer); the result is scored on ``model``.
    ``mask``: attack only these of them; ``init``: warm-start points for the batch (see ``Attack``)."""
    if x.dim() == 4 and _channels_last(model):
        # Our models run channels_last; feeding them NCHW makes every attack step convert (~20% slower).
        x = x.contiguous(memory_format=torch.channels_last)
    if clean_probs is None:
        clean_probs = fake_probs(model, x)
    x_adv, probs = x.clone(), clean_probs.clone()
    target = ((clean_probs >= 0.5).long() == y) if only_correct else torch.ones_like(y, dtype=torch.bool)
    if mask is not None:  # a subset of those (the rest keep x)
        target = target & mask
    idx = target.nonzero().squeeze(1)
    if len(idx):
        # init only when given: wrappers (EOT, defenses' BPDA) and plain callables need not take it
        kw = {} if init is None else {"init": init[idx]}
        xa = attack(attack_model if attack_model is not None else model, x[idx], y[idx], **kw)
        x_adv[idx] = xa
        probs[idx] = fake_probs(model, xa)
    return x_adv, probs


def robust_mask(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per sample: still classified correctly (score on the right side of 0.5)."""
    return (probs >= 0.5).astype(int) == labels


def worst_case(labels: np.ndarray, scores: Sequence[np.ndarray]) -> np.ndarray:
    """Per sample, the score of the attack that pushed it furthest to the wrong side."""
    stack = np.stack(scores)
    return np.where(labels == 1, stack.min(0), stack.max(0))


@dataclass(frozen=True)
class _Face:
    """A gallery face: its metadata and its clean and attacked images ([C, H, W] in [0, 1])."""

    item: GalleryItem
    clean: np.ndarray
    adv: np.ndarray


class _Gallery:
    """The first correctly classified samples of each class, for the report's gallery: real, fake, real,
    ... when both classes have enough, topped up from the other class when one has too few."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.by_class: dict[int, list[_Face]] = {0: [], 1: []}

    def full(self) -> bool:
        return all(len(v) >= (self.n + 1) // 2 for v in self.by_class.values())

    def offer(self, x, x_adv, y, p_clean, p_adv, start: int) -> None:
        for i in range(len(y)):
            label = int(y[i])
            if len(self.by_class[label]) < self.n and int(p_clean[i] >= 0.5) == label:
                item = GalleryItem(index=start + i, label=label, p_clean=float(p_clean[i]),
                                   p_adv=float(p_adv[i]))
                self.by_class[label].append(_Face(item, clean=x[i].cpu().float().numpy(),
                                                  adv=x_adv[i].cpu().float().numpy()))

    @property
    def faces(self) -> list[_Face]:
        real, fake = self.by_class[0], self.by_class[1]
        k = min(len(real), len(fake), self.n // 2)
        paired = [item for pair in zip(real[:k], fake[:k], strict=True) for item in pair]
        rest = real[k:] + fake[k:]
        return paired + rest[: self.n - len(paired)]


def _gallery_attack(spec: SweepSpec) -> str:
    """The strongest iterative attack of the sweep, else its first attack."""
    return next(iter(attacks_of_kind(ITERATIVE, spec.attacks)), spec.attacks[0])


Channel = Callable[[torch.Tensor], torch.Tensor]


def sweep(model: nn.Module, data: Dataset, spec: SweepSpec, device: torch.device, batch_size: int = 128,
          progress: bool = False, attack_model: nn.Module | None = None,
          channels: dict[str, Channel] | None = None) -> tuple[SweepResult, GalleryImages | None]:
    """Clean metrics, one row per (attack, ε) and per-ε worst-case rows, per-sample scores, a gallery.

    One pass over ``data``; items are (x, y) or (x, y, video_id). ``data.video_methods`` (video id ->
    method), when present, adds per-method metrics. The model is left in the mode it came in. Returns
    the result and, apart (they are not part of results.json), the gallery's clean and attacked images.
    ``attack_model``: what attacks differentiate (see :func:`attack_correct`). ``channels``: named
    re-encodings (``"jpeg:75"`` -> function) each clean and adversarial batch also passes through before
    it is scored, for the "after re-encoding" rows (``SweepResult.reencoded``).
    """
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    eps_list = sorted(set(spec.eps))
    keys = [(a, e) for e in eps_list for a in cascade_order(spec.attacks)]  # cheap and small first
    attacks = {k: make_attack(k[0], k[1], spec) for k in keys}
    gallery_key = (_gallery_attack(spec), max(eps_list)) if keys else None
    gallery = _Gallery(spec.gallery)
    clean, labels, vids = [], [], []
    adv: dict = {k: [] for k in keys}
    channels = channels or {}
    through: dict = {(k, c): [] for k in [("clean", 0.0), *keys] for c in channels}
    correct: list[np.ndarray] = []
    seconds = dict.fromkeys(keys, 0.0)
    attacked = dict.fromkeys(keys, 0)
    has_vids, seen = True, 0
    start = time.perf_counter()
    with eval_mode(model):
        for batch in progress_bar(loader, desc="robust eval", leave=False, enabled=progress, unit="batch"):
            x, y, v = split_batch(batch)
            x, y = x.to(device), y.to(device)
            p_clean = fake_probs(model, x)
            correct.append(((p_clean >= 0.5).long() == y).cpu().numpy())
            for c, fn in channels.items():
                through[(("clean", 0.0), c)].append(fake_probs(model, fn(x)).cpu().numpy())
            reuse = _Reuse(x, p_clean, seen, spec) if spec.reuse and spec.early_stop else None
            for k in keys:
                t0 = time.perf_counter()
                x_adv, p_adv = _attack_batch(model, x, y, attacks[k], p_clean, spec, reuse, attack_model)
                seconds[k] += time.perf_counter() - t0
                for c, fn in channels.items():
                    through[(k, c)].append(fake_probs(model, fn(x_adv)).cpu().numpy())
                attacked[k] += int(((p_clean >= 0.5).long() == y).sum()) if spec.early_stop else len(y)
                adv[k].append(p_adv.cpu().numpy())
                if k == gallery_key and not gallery.full():
                    gallery.offer(x, x_adv, y, p_clean, p_adv, seen)
            clean.append(p_clean.cpu().numpy())
            labels.append(y.cpu().numpy())
            if v is None:
                has_vids = False
            else:
                vids.extend(str(i) for i in v)
            seen += len(y)
    rows_order = [(a, e) for a in spec.attacks for e in eps_list]
    result, images = _assemble(data, spec, rows_order, clean, labels, vids if has_vids else None, adv,
                               seconds, attacked, gallery, gallery_key, time.perf_counter() - start)
    result.reencoded = _reencoded_rows(result, through, np.concatenate(correct) if correct else np.zeros(0),
                                       spec)
    return result, images


def _attack_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, p_clean: torch.Tensor,
                  spec: SweepSpec, reuse: _Reuse | None,
                  attack_model: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One key's (x_adv, P(fake) on it) for a batch: through the cascade (``reuse``), or independently
    (the correct faces with early stop, else every face)."""
    if reuse is None:
        return attack_correct(model, x, y, attack, p_clean, only_correct=spec.early_stop,
                              attack_model=attack_model)
    return reuse.attack(model, x, y, attack, attack_model)


def cascade_order(attacks: tuple[str, ...]) -> list[str]:
    """``attacks`` cheapest first: single-step, then iterative (weaker rank first), then black-box."""
    from deepshield.attacks import ATTACKS
    from deepshield.attacks.base import KINDS

    return sorted(attacks, key=lambda a: (KINDS.index(ATTACKS[a].kind), ATTACKS[a].rank))


class _Reuse:
    """Per batch, across the sweep's keys (ε ascending, cheap attack first): which faces are already
    fooled and by which point.

    A point that fooled the model at ε lies inside every larger ball, so a fooled face keeps it instead
    of being attacked again; the survivors are attacked with this key's attack from its own fresh start
    (not warm-started: see the module docstring). So each row counts a face as fooled by this attack or
    a cheaper one at ≤ ε: at least as strong as independent runs. Faces among the first
    ``spec.sanity_n`` of the data are attacked independently at every key (no reuse), for the sanity
    checks, which compare those runs."""

    def __init__(self, x: torch.Tensor, p_clean: torch.Tensor, start: int, spec: SweepSpec) -> None:
        index = torch.arange(start, start + len(x), device=x.device)
        self.independent = index < spec.sanity_n
        self.fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.x_best, self.p_best = x.clone(), p_clean.clone()
        self.p_clean = p_clean

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack,
               attack_model: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
        """This key's points: the independent faces and the survivors attacked, the faces fooled before
        keeping their fooling point."""
        x_adv, p_adv = attack_correct(model, x, y, attack, self.p_clean, attack_model=attack_model,
                                      mask=self.independent | ~self.fooled)
        return self.update(x_adv, p_adv, y)

    def update(self, x_adv: torch.Tensor, p_adv: torch.Tensor,
               y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This key's points with the earlier fooling points reused; remembers the new ones."""
        reused = self.fooled & ~self.independent
        x_adv, p_adv = x_adv.clone(), p_adv.clone()
        x_adv[reused], p_adv[reused] = self.x_best[reused], self.p_best[reused]
        new = ((p_adv >= 0.5).long() != y) & ~self.fooled
        self.x_best[new], self.p_best[new] = x_adv[new], p_adv[new]
        self.fooled |= new
        return x_adv, p_adv


def measured_row(attack: str, eps: float, norm: str, key: str, labels: np.ndarray, probs: np.ndarray,
                 video_ids: list[str] | None, methods: list[str] | None, **extra) -> SweepRow:
    """The sweep row of the P(fake) scores ``probs`` at (``attack``, ``eps``), stored under ``key``:
    detection metrics (per video and method when ``video_ids``/``methods`` are given) and ``extra``, the
    fields of its kind of row (``seconds``, ``channel``, ``transfer_from`` ...; see ``SweepRow``)."""
    metrics = Metrics.from_json(detection_metrics(labels, probs, video_ids, methods))
    return SweepRow(attack, eps, norm, key, metrics, **extra)


def _reencoded_rows(result: SweepResult, through: dict, correct: np.ndarray,
                    spec: SweepSpec) -> list[SweepRow]:
    """Per (attack, ε) and channel: metrics after re-encoding, and the attack's success rate (attacked
    samples misclassified) before and after it. ``clean`` rows: what re-encoding alone does."""
    labels = np.asarray(result.samples.labels, dtype=int)
    vids, methods = result.samples.video_ids, result.samples.methods
    rows = []
    for ((attack, eps), channel), parts in through.items():
        probs = np.concatenate(parts) if parts else np.zeros(0)
        base = "clean" if attack == "clean" else row_key(attack, eps, spec.norm)
        key = f"{base}|{channel}"
        result.samples.scores[key] = probs.tolist()
        success = {}
        if attack != "clean" and correct.any():
            before = np.asarray(result.samples.scores[base])
            success = {"success_before": float((~robust_mask(labels, before))[correct].mean()),
                       "success": float((~robust_mask(labels, probs))[correct].mean())}
        rows.append(measured_row(attack, eps, spec.norm, key, labels, probs, vids, methods, channel=channel,
                                 **success))
    return rows


def _assemble(data, spec, keys, clean, labels, vids, adv, seconds, attacked, gallery, gallery_key,
              total_s) -> tuple[SweepResult, GalleryImages | None]:
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)

    labels = cat(labels).astype(int)
    methods = sample_methods(labels, vids, getattr(data, "video_methods", None))
    clean = cat(clean)
    scores = {"clean": clean}
    rows = []
    for attack, eps in keys:
        key = row_key(attack, eps, spec.norm)
        scores[key] = cat(adv[(attack, eps)])
        rows.append(measured_row(attack, eps, spec.norm, key, labels, scores[key], vids, methods,
                                 seconds=seconds[(attack, eps)], attacked=attacked[(attack, eps)]))
    worst = []
    if len(spec.attacks) > 1:
        for eps in sorted({e for _, e in keys}):
            key = row_key("worst-case", eps, spec.norm)
            scores[key] = worst_case(labels, [scores[row_key(a, eps, spec.norm)] for a in spec.attacks])
            worst.append(measured_row("worst-case", eps, spec.norm, key, labels, scores[key], vids, methods,
                                      attacks=tuple(spec.attacks)))
    faces = gallery.faces if gallery_key is not None else []
    meta, images = None, None
    if faces:
        meta = Gallery(attack=gallery_key[0], eps=gallery_key[1], norm=spec.norm,
                       items=tuple(f.item for f in faces))
        images = GalleryImages(clean=np.stack([f.clean for f in faces]), adv=np.stack([f.adv for f in faces]))
    samples = Samples(labels=labels.tolist(), video_ids=vids, methods=methods,
                      scores={k: v.tolist() for k, v in scores.items()})
    metrics = Metrics.from_json(detection_metrics(labels, clean, vids, methods))
    result = SweepResult(clean=metrics, robust=rows, worst_case=worst, spec=spec, n=int(len(labels)),
                         seconds=total_s, samples=samples, gallery=meta)
    return result, images
