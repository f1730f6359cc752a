"""Whole videos, not only frames: a tiny temporal head over the frame model's per-frame embeddings.

    >>> video = VideoModel(frame_model, TemporalHead(HeadConfig(frames=16, dim=1280)), image_size=128)
    >>> p, note = video_score(video, frames)          # frames [N, 3, S, S] in [0, 1], time order
    >>> save_video_model("video.pt", video, loading.load_checkpoint(frame_path))
    >>> video, cfg, raw = load_video_model("video.pt", device)   # one self-contained file

The head reads T evenly spaced frames: each frame's pooled penultimate embedding [D] (the input of
the frame model's classifier) and its fake log-odds (logit_fake - logit_real). It projects the
embeddings to ``width`` channels, appends the scaled log-odds, runs two kernel-3 1-D convolutions over
time, pools mean and max, and adds one zero-initialised linear output to ``scale * mean(log-odds) +
bias``. At init it is therefore exactly the ``mean_logodds`` aggregation of the frame scores
(:mod:`deepshield.contracts.aggregate`), and training can only move it away where the data say so.

Checkpoint (``torch.load(weights_only=True)``): ``{"format": VIDEO_FORMAT, "kind": "video", "head":
state dict, "head_config": HeadConfig fields, "frame": the frame model's whole deepshield checkpoint
(model, config, ...), "metrics": ...}``, so one file is enough to predict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepshield.config import TrainConfig
from deepshield.errors import DataError
from deepshield.io import atomic_write
from deepshield.models import build_model
from deepshield.models.loading import CheckpointError
from deepshield.models.parts import head_module, unwrap

VIDEO_FORMAT = "deepshield-video-v1"
# The log-odds of p clipped to [1e-6, 1 - 1e-6], as the mean_logodds aggregation clips them.
LOGODDS_CLIP = float(np.log((1 - 1e-6) / 1e-6))
LOGODDS_SCALE = 4.0  # log-odds enter the convolutions divided by this, next to O(1) projected features
# What a frame checkpoint carries into a video checkpoint (an optimizer state is left behind).
FRAME_KEYS = ("format", "version", "model", "config", "metrics", "source", "epoch")


@dataclass(frozen=True)
class HeadConfig:
    """The temporal head: ``frames`` T read per video, embedding size ``dim`` D, ``width`` channels;
    ``embeddings`` False reads only the per-frame log-odds (a ~100-parameter head); ``kernel`` 1 makes
    it blind to frame order (a per-frame head, pooled: the control for what time adds)."""

    frames: int = 16
    dim: int = 1280
    width: int = 64
    embeddings: bool = True
    dropout: float = 0.1
    kernel: int = 3

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HeadConfig:
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})


class TemporalHead(nn.Module):
    """Per-frame embeddings [B, T, D] and fake log-odds [B, T] -> one fake logit [B] per video."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, k = cfg.width, cfg.kernel
        self.proj = (nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, w), nn.GELU())
                     if cfg.embeddings else None)
        self.conv = nn.Sequential(nn.Conv1d(w + 1 if cfg.embeddings else 1, w, k, padding=k // 2), nn.GELU(),
                                  nn.Dropout(cfg.dropout), nn.Conv1d(w, w, k, padding=k // 2), nn.GELU())
        self.out = nn.Linear(2 * w, 1)
        nn.init.zeros_(self.out.weight)  # at init: the mean of the frame log-odds, nothing else
        nn.init.zeros_(self.out.bias)
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, emb: torch.Tensor | None, logodds: torch.Tensor) -> torch.Tensor:
        lo = logodds.float().clamp(-LOGODDS_CLIP, LOGODDS_CLIP)
        x = (lo / LOGODDS_SCALE).unsqueeze(-1)                                    # [B, T, 1]
        if self.proj is not None:
            if emb is None:
                raise ValueError("this temporal head reads embeddings; pass emb [B, T, D]")
            x = torch.cat([self.proj(emb.float()), x], dim=-1)
        h = self.conv(x.transpose(1, 2))                                          # [B, w, T]
        pooled = torch.cat([h.mean(2), h.amax(2)], dim=1)
        return self.scale * lo.mean(1) + self.bias + self.out(pooled).squeeze(1)


def frame_logodds(logits: torch.Tensor) -> torch.Tensor:
    """Fake log-odds log(p_fake / p_real) of 2-class logits [N, 2] (= logit_fake - logit_real)."""
    return (logits[:, 1] - logits[:, 0]).float()


def even_indices(n: int, t: int) -> np.ndarray:
    """``t`` evenly spaced indices into ``n`` frames in time order (repeats when n < t)."""
    return np.rint(np.linspace(0, n - 1, t)).astype(np.int64)


class VideoModel(nn.Module):
    """A frame model (pixels in [0, 1] -> logits [N, 2]) and a :class:`TemporalHead` over T frames."""

    def __init__(self, frame_model: nn.Module, head: TemporalHead, image_size: int) -> None:
        super().__init__()
        self.frame_model, self.head, self.image_size = frame_model, head, image_size

    @torch.no_grad()
    def embed(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [N, 3, S, S] in [0, 1] -> (embeddings [N, D], fake log-odds [N]) of the frame model."""
        return embed_frames(self.frame_model, frames)

    def logit(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, 3, S, S] -> the video fake logit [B]."""
        b, t = frames.shape[:2]
        emb, lo = self.embed(frames.flatten(0, 1))
        return self.head(emb.view(b, t, -1), lo.view(b, t))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, 3, S, S] in [0, 1], time order -> the video P(fake) [B]."""
        return torch.sigmoid(self.logit(frames))


@torch.no_grad()
def embed_frames(frame_model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled penultimate embeddings [N, D], fake log-odds [N]) of ``frame_model`` for x [N, 3, S, S].

    The embedding is what the model's classifier reads (timm's ``forward_head(pre_logits=True)``), taken
    with a hook so that any model with a classifier works (timm, torchvision, SmallCNN).
    """
    head = head_module(unwrap(frame_model)[0])
    if head is None:
        raise ValueError(f"{type(frame_model).__name__} has no classifier to read embeddings from")
    seen: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].flatten(1)))
    try:
        logits = frame_model(x)
    finally:
        handle.remove()
    return seen[-1].float(), frame_logodds(logits)


@torch.no_grad()
def video_score(video: VideoModel, frames: torch.Tensor) -> tuple[float, str]:
    """(P(fake), note) of one video from its frames [N, 3, S, S] in [0, 1], time order.

    N >= 2: the head reads T evenly spaced frames (repeated when N < T). N == 1 (an image): the frame
    model's score, and the note says so. The note is "" when nothing needs saying.
    """
    n = int(frames.shape[0])
    if n == 0:
        raise DataError("no frames to score: the video gave no face crops")
    emb, lo = video.embed(frames)
    if n == 1:
        return float(torch.sigmoid(lo[0])), "1 frame: frame model score, the temporal head needs >= 2"
    t = video.head.cfg.frames
    ix = torch.from_numpy(even_indices(n, t)).to(lo.device)
    p = float(torch.sigmoid(video.head(emb[ix].unsqueeze(0), lo[ix].unsqueeze(0)))[0])
    return p, (f"{n} frames: repeated to the head's {t}" if n < t else "")


def save_video_model(path: str | Path, video: VideoModel, frame_checkpoint: dict[str, Any],
                     metrics: dict[str, Any] | None = None) -> Path:
    """Write ``video``'s head and the frame checkpoint it was trained on as one file, atomically."""
    from deepshield import __version__

    payload = {"format": VIDEO_FORMAT, "kind": "video", "version": __version__,
               "head": {k: v.detach().cpu() for k, v in video.head.state_dict().items()},
               "head_config": asdict(video.head.cfg),
               "frame": {k: frame_checkpoint[k] for k in FRAME_KEYS if k in frame_checkpoint},
               "metrics": dict(metrics or {})}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), fsync=True)


def is_video_checkpoint(ckpt: object) -> bool:
    """Whether a loaded file is a video checkpoint (rather than a frame model's)."""
    return isinstance(ckpt, dict) and ckpt.get("format") == VIDEO_FORMAT and ckpt.get("kind") == "video"


def load_video_model(path: str | Path,
                     device: torch.device) -> tuple[VideoModel, TrainConfig, dict[str, Any]]:
    """The :class:`VideoModel` of a video checkpoint in eval mode, its frame model's TrainConfig and raw
    config dict (with ``preprocess``), read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"video checkpoint {path} not found; write one with scripts/temporal.py "
                              "--save-head")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(f"{path} is not a readable video checkpoint ({type(e).__name__})") from None
    if not is_video_checkpoint(ckpt):
        raise CheckpointError(f"{path} is not a deepshield video checkpoint; pass a file written by "
                              "scripts/temporal.py --save-head (a frame model goes to --checkpoint)")
    frame = ckpt["frame"]
    raw = dict(frame.get("config") or {})
    cfg = TrainConfig.from_dict(raw)
    frame_model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size, pretrained=None,
                              act=cfg.act).to(device)
    frame_model.load_state_dict(frame["model"])
    head = TemporalHead(HeadConfig.from_dict(ckpt["head_config"])).to(device)
    head.load_state_dict(ckpt["head"])
    return VideoModel(frame_model, head, cfg.image_size).eval(), cfg, raw


__all__ = ["FRAME_KEYS", "LOGODDS_CLIP", "VIDEO_FORMAT", "HeadConfig", "TemporalHead", "VideoModel",
           "embed_frames", "even_indices", "frame_logodds", "is_video_checkpoint", "load_video_model",
           "save_video_model", "video_score"]
