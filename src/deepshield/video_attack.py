"""``deepshield attack``: an adversarial *video file* that survives the detector's pipeline and re-encoding.

The threat model is an adversary who controls the video file. The detector (``deepshield predict``)
decodes it, samples frames, finds each face, cuts the crop its checkpoint was trained on, resizes it,
scores it and averages the frame scores. So the attack:

1. runs the detector on the input, keeping the sampled frames and the face boxes it found;
2. perturbs the face square of each of those frames *in frame pixels* (L∞ ε in [0, 1] units), and
   back-propagates through the same crop and resize predict applies (bicubic to the crop size, then
   bilinear to the model's input size, both antialiased) to the *video-level* score: the mean P(target)
   over frames, ``-log mean_i p_target(x_i)``, so frames that are already won stop dominating;
3. averages gradients over ``eot`` random transformations per step (expectation over transformation,
   Athalye et al. 2018): differentiable JPEG at quality 50–95 or the H.264 intra-coding proxy at CRF
   18–30 (``threats.reencode``), and a random rescale (±6%) and shift (±3%) of the face square;
4. writes every frame to an H.264 mp4 at ``--crf`` (with ``attack_frames="all"`` the perturbation of the
   nearest sampled frame is added at the same pixels of the frames between, where the face has moved
   little; ``"sampled"`` perturbs only the sampled frames);
5. judges the *decoded file* with the real pipeline (``Predictor``) and reports p_fake before/after,
   success, and PSNR/SSIM of the sampled frames.

With ``surrogate``, gradients come from another checkpoint (crops cut with the target's settings,
resized to the surrogate's input size): a transfer (black-box) attack on the target.

    >>> result = attack_video(VideoAttackConfig("fake.mp4", "adv.mp4", eps=4/255))
    >>> result.success, result.p_fake_before, result.p_fake_after
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepshield.config import PredictConfig, VideoAttackConfig
from deepshield.data.crops import fit_square, square_box
from deepshield.errors import DataError, NoFaceError
from deepshield.models.loading import load_model
from deepshield.predict import MediaResult, Predictor
from deepshield.progress import progress
from deepshield.threats.reencode import (
    h264_diff,
    h264_roundtrip,
    jpeg_diff,
    jpeg_roundtrip,
    psnr,
    read_video,
    ssim,
    write_video,
)

TARGETS = {"real": 0, "fake": 1}
STOP_AT = 0.85  # stop once the EOT-averaged video P(target) is this sure: a margin for the real codec


@dataclass
class VideoAttackResult:
    """What ``deepshield attack`` did and what the detector says about the file it wrote."""

    video: str
    out: str
    target: str
    success: bool
    label_before: str
    label_after: str
    p_fake_before: float
    p_fake_after: float
    p_fake_crafted: float       # the crafting model's video score on the perturbed frames, before encoding
    p_fake_uncompressed: float  # the detector (real crop path) on the perturbed frames, before encoding
    psnr: float
    ssim: float
    frames_total: int
    frames_attacked: int
    faces_attacked: int
    eps_255: float
    steps: int                  # steps run (at most --steps; fewer once the crafting model is sure)
    eot: int
    crf: int
    surrogate: str | None
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Face:
    frame: int                       # index into the decoded frames
    square: tuple[int, int, int, int]  # the crop square in frame pixels (left, top, right, bottom)


def attack_video(cfg: VideoAttackConfig) -> VideoAttackResult:
    """Craft, write and judge an adversarial video; see the module docstring."""
    start = time.perf_counter()
    judge = Predictor(PredictConfig(inputs=(cfg.video,), checkpoint=cfg.checkpoint, frames=cfg.frames,
                                    device=cfg.device, runtime="torch"))  # the attack needs gradients
    before = judge.predict(cfg.video)
    _check_scored(before)
    target = cfg.target if cfg.target != "auto" else ("real" if before.label == "FAKE" else "fake")
    frames, fps = read_video(cfg.video)
    faces = _faces(before, judge, frames)
    model, image_size = (judge.model, judge.train_cfg.image_size) if cfg.surrogate is None else \
        _surrogate(cfg.surrogate, judge.device)
    torch.manual_seed(cfg.seed)
    deltas, crafted, steps = _craft(model, frames, faces, TARGETS[target], cfg, judge.settings.size,
                                    image_size, judge.device)
    adv = _apply(frames, faces, deltas, cfg.attack_frames)
    # The real crop path (PIL resizes) on the perturbed frames before any encoding: what the file would
    # score if the platform kept it losslessly.
    crops = [judge._crop(adv[f.frame_index], f.box) for f in before.faces]
    uncompressed = float(np.mean(judge._score(crops)))
    write_video(cfg.out, adv, fps, crf=cfg.crf)
    after = judge.predict(cfg.out)
    _check_scored(after, written=True)
    decoded, _ = read_video(cfg.out)
    sampled = sorted({f.frame for f in faces})
    return VideoAttackResult(
        video=str(cfg.video), out=str(cfg.out), target=target.upper(), success=after.label == target.upper(),
        label_before=before.label, label_after=after.label, p_fake_before=float(before.p_fake),
        p_fake_after=float(after.p_fake), p_fake_crafted=crafted, p_fake_uncompressed=uncompressed,
        psnr=float(np.mean([psnr(frames[i], decoded[i]) for i in sampled])),
        ssim=float(np.mean([ssim(frames[i], decoded[i]) for i in sampled])),
        frames_total=len(frames), frames_attacked=len(frames) if cfg.attack_frames == "all" else len(sampled),
        faces_attacked=len(faces), eps_255=round(cfg.eps * 255, 3), steps=steps, eot=cfg.eot,
        crf=cfg.crf, surrogate=cfg.surrogate, seconds=round(time.perf_counter() - start, 1))


def _check_scored(result: MediaResult, written: bool = False) -> None:
    if result.status == "error":
        raise DataError(f"cannot read {result.path}: {result.error}")
    if result.status == "no_face":
        what = "the written video" if written else "the input"
        raise NoFaceError(f"no face found in {result.path} ({what}): {result.frames_sampled} sampled "
                          "frame(s) had no face; there is nothing to attack")


def _faces(result: MediaResult, judge: Predictor, frames: list[np.ndarray]) -> list[_Face]:
    """The detector's faces as crop squares in frame pixels (the frames it sampled, its boxes)."""
    if not frames:
        raise DataError(f"{result.path}: no frame decodes")
    s = judge.settings
    out = []
    for face in result.faces:
        if face.frame_index >= len(frames):
            raise DataError(f"{result.path}: predict sampled frame {face.frame_index} but only "
                            f"{len(frames)} decode")
        height, width = frames[face.frame_index].shape[:2]
        square = fit_square(square_box(face.box, s.margin, s.shift), width, height)
        out.append(_Face(face.frame_index, square))
    return out


def _surrogate(checkpoint: str, device: torch.device) -> tuple[nn.Module, int]:
    model, cfg = load_model(checkpoint, device)
    return model, cfg.image_size


def _regions(frames: list[np.ndarray], faces: list[_Face], device: torch.device) -> list[torch.Tensor]:
    out = []
    for f in faces:
        left, top, right, bottom = f.square
        patch = frames[f.frame][top:bottom, left:right]
        tensor = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)
        out.append(tensor.to(device, torch.float32) / 255)
    return out


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode=mode, antialias=True, align_corners=False)


def _crops(regions: list[torch.Tensor], deltas: list[torch.Tensor], crop_size: int,
           codec: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The perturbed face squares, passed through ``codec`` at frame resolution (where a platform's
    encoder acts), resized (bicubic, as predict cuts them) to the crop size; [N, 3, C, C]."""
    out = []
    for r, d in zip(regions, deltas, strict=True):
        x = (r + d).clamp(0, 1).unsqueeze(0)
        out.append(_resize(codec(x) if codec is not None else x, crop_size, "bicubic"))
    return torch.cat(out).clamp(0, 1)


def _codec(gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """One EOT draw of the channel: real JPEG at quality 40–95, or real x264 intra coding at CRF 18–32
    (inter-coded frames are quantized harder than intra ones, hence the range past 23). The forward
    pass is the real codec; the backward pass goes through its differentiable proxy (BPDA with a
    differentiable approximation, Athalye et al. 2018)."""
    if torch.rand((), generator=gen) < 0.5:
        quality = int(torch.randint(40, 96, (), generator=gen))
        real, proxy = (lambda x: jpeg_roundtrip(x, quality)), (lambda x: jpeg_diff(x, quality))
    else:
        crf = int(torch.randint(18, 33, (), generator=gen))
        real, proxy = (lambda x: h264_roundtrip(x, crf)), (lambda x: h264_diff(x, crf))

    def codec(x: torch.Tensor) -> torch.Tensor:
        approx = proxy(x)
        with torch.no_grad():
            exact = real(x.detach())
        return approx + (exact - approx).detach()

    return codec


def _transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random rescale (±6%) and shift (±3%) per crop, as re-detection on a re-encoded, possibly
    rescaled video would cut it."""
    n = len(x)
    scale = 1 + (torch.rand(n, generator=gen) * 0.12 - 0.06)
    shift = torch.rand(n, 2, generator=gen) * 0.06 - 0.03
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _video_loss(model: nn.Module, crops: torch.Tensor, image_size: int,
                target: int) -> tuple[torch.Tensor, float]:
    """-log of the video's mean P(target) (predict's ``mean`` aggregation) on crops resized (bilinear)
    to the model's input, and that mean P(target)."""
    logits = model(_resize(crops, image_size, "bilinear").clamp(0, 1))
    p_target = torch.softmax(logits.float(), 1)[:, target].mean()
    return -torch.log(p_target.clamp_min(1e-12)), float(p_target.detach())


def _craft(model: nn.Module, frames: list[np.ndarray], faces: list[_Face], target: int,
           cfg: VideoAttackConfig, crop_size: int, image_size: int,
           device: torch.device) -> tuple[list[torch.Tensor], float, int]:
    """Signed-gradient steps on the face squares (PGD in frame pixels), gradients averaged over ``eot``
    transformations. Stops early once the EOT-averaged video P(target) reaches ``STOP_AT`` (a margin
    for the real encoder). Returns the perturbations, the crafting model's video P(fake) on the
    untransformed perturbed crops, and the steps run."""
    regions = _regions(frames, faces, device)
    deltas = [torch.zeros_like(r, requires_grad=True) for r in regions]
    gen = torch.Generator().manual_seed(cfg.seed)
    was_training, steps = model.training, 0
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in progress(range(cfg.steps), desc="attack", enabled=cfg.progress, unit="step"):
            p_eot = 0.0
            for _ in range(cfg.eot):
                crops = _crops(regions, deltas, crop_size, _codec(gen))
                loss, p_target = _video_loss(model, _transform(crops, gen), image_size, target)
                (loss / cfg.eot).backward()
                p_eot += p_target / cfg.eot
            with torch.no_grad():
                for r, d in zip(regions, deltas, strict=True):
                    d -= cfg.step_size * d.grad.sign()
                    d.clamp_(-cfg.eps, cfg.eps)
                    d.copy_((r + d).clamp(0, 1) - r)  # stay inside the frame's [0, 1]
                    d.grad = None
            steps += 1
            if p_eot >= STOP_AT:
                break
        with torch.no_grad():
            _, p_target = _video_loss(model, _crops(regions, deltas, crop_size), image_size, target)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    return [d.detach() for d in deltas], (p_target if target == 1 else 1 - p_target), steps


def _apply(frames: list[np.ndarray], faces: list[_Face], deltas: list[torch.Tensor],
           attack_frames: str) -> list[np.ndarray]:
    """The frames with each face square's perturbation added (uint8, rounded). With ``all``, a frame
    gets the perturbations of its nearest sampled frame, at the same pixels."""
    adv = [f.copy() for f in frames]
    sampled = sorted({f.frame for f in faces})
    if attack_frames == "all" and sampled:
        gaps = np.abs(np.arange(len(frames))[:, None] - np.array(sampled)[None])
        nearest = np.array(sampled)[gaps.argmin(1)]
    else:
        nearest = np.array([i if i in sampled else -1 for i in range(len(frames))])
    by_frame: dict[int, list[tuple[_Face, np.ndarray]]] = {}
    for face, delta in zip(faces, deltas, strict=True):
        by_frame.setdefault(face.frame, []).append((face, delta.permute(1, 2, 0).cpu().numpy() * 255))
    for i, src in enumerate(nearest):
        for face, d in by_frame.get(int(src), []):
            left, top, right, bottom = face.square
            patch = adv[i][top:bottom, left:right].astype(np.float32) + d
            adv[i][top:bottom, left:right] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    return adv


def format_result(r: VideoAttackResult) -> str:
    """Console lines: the verdict before and after, and what the perturbation costs."""
    how = f"transfer from {r.surrogate}" if r.surrogate else "white-box"
    return "\n".join([
        f"{'SUCCESS' if r.success else 'FAILED'}: target {r.target}; {r.label_before} (p_fake "
        f"{r.p_fake_before:.3f}) -> {r.label_after} (p_fake {r.p_fake_after:.3f}) on the decoded H.264 file",
        f"  {how}, eps {r.eps_255:g}/255, {r.steps} steps x EOT {r.eot}; p_fake before encoding "
        f"{r.p_fake_uncompressed:.3f} (crafting model {r.p_fake_crafted:.3f}); CRF {r.crf}",
        f"  {r.faces_attacked} faces in {r.frames_attacked}/{r.frames_total} frames; PSNR {r.psnr:.1f} dB, "
        f"SSIM {r.ssim:.4f}; {r.seconds:.0f} s; wrote {r.out}",
    ])


__all__ = ["VideoAttackResult", "attack_video", "format_result"]
