"""Grad-CAM: where in a face crop the evidence for "fake" lies (Selvaraju et al., ICCV 2017).

For a convolutional layer with activations A (K maps of h x w), the map for class c is
``ReLU(sum_k w_k A_k)`` with ``w_k`` = the spatial mean of d score_c / d A_k, upsampled (bilinear) to
the input size and divided by its maximum, so it lies in [0, 1] (all zeros when nothing speaks for c).
The score is class c's log-odds (``logit_c - logsumexp(other logits)``; for two classes the logit
difference), the only thing the softmax probability depends on.

The layer is, unless given, the last module whose output is a feature map with spatial size > 1 — for
our models the last convolutional stage: SmallCNN's last conv block, a timm EfficientNet's head conv
(``conv_head`` + ``bn2``), a MobileNetV2's last ``features`` block.

    >>> heat = gradcam(model, x)                 # x: [N, 3, H, W] in [0, 1] -> [N, H, W] in [0, 1]
    >>> Image.fromarray(overlay(crop, heat[0])).save("face_cam.png")

The model is left as it was: its train/eval mode is restored, no ``.grad`` is left on its parameters
(gradients are taken with ``torch.autograd.grad`` w.r.t. the activations only), hooks are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from deepshield.errors import ConfigError
from deepshield.io import atomic_write, write_json_atomic


def _feature_map(out: object) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 1 and out.shape[-2] > 1


def find_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Name of the last module (in execution order) of ``model`` whose output is a feature map with
    spatial size > 1, found with one forward pass of ``x`` (a [1, 3, H, W] probe is enough)."""
    last: list[str] = []

    def record(name: str):
        return lambda _m, _i, out: last.append(name) if _feature_map(out) else None

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not last:
        raise ConfigError(f"{type(model).__name__} has no module with a spatial feature map for Grad-CAM; "
                          "pass layer= (a module or its name)")
    return last[-1]


def _resolve(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ConfigError(f"Grad-CAM layer {layer!r} is not a module of {type(model).__name__}; "
                          "pass a name from model.named_modules()")
    return modules[layer]


def gradcam(model: nn.Module, x: torch.Tensor, target: int = 1, layer: nn.Module | str | None = None,
            batch_size: int = 32) -> np.ndarray:
    """Grad-CAM maps of class ``target`` (1 = fake) for ``x`` ([N, 3, H, W] pixels in [0, 1]).

    Returns float32 [N, H, W] in [0, 1]. ``layer``: a module of ``model`` or its name; default: the
    last spatial feature map (:func:`find_layer`). The model runs in eval mode, in batches.
    """
    if x.dim() != 4:
        raise ConfigError(f"gradcam needs x of shape [N, 3, H, W], got {tuple(x.shape)}")
    module = _resolve(model, layer if layer is not None else find_layer(model, x[:1]))
    was_training = model.training
    maps = []
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            maps.append(_gradcam_batch(model, module, x[i:i + batch_size], target))
    finally:
        model.train(was_training)
    return np.concatenate(maps) if maps else np.zeros((0, *x.shape[-2:]), np.float32)


def _gradcam_batch(model: nn.Module, module: nn.Module, x: torch.Tensor, target: int) -> np.ndarray:
    acts: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        with torch.enable_grad():
            # the input needs a gradient path even when the model's parameters are frozen
            logits = model(x.detach().clone().requires_grad_(True)).float()
            if not acts:
                raise ConfigError(f"Grad-CAM layer {type(module).__name__} did not run in the forward pass")
            if not 0 <= target < logits.shape[1]:
                raise ConfigError(f"Grad-CAM target {target} is not a class of the model "
                                  f"({logits.shape[1]} classes)")
            others = torch.cat([logits[:, :target], logits[:, target + 1:]], 1)
            score = logits[:, target] - torch.logsumexp(others, 1)
            act = acts[-1]
            (grad,) = torch.autograd.grad(score.sum(), act)
    finally:
        hook.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act.detach()).sum(1, keepdim=True))
    cam = F.interpolate(cam.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).clamp_(0, 1).cpu().numpy().astype(np.float32)


def gallery_heatmaps(model: nn.Module, clean: np.ndarray,
                     adv: np.ndarray) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Grad-CAM of "fake" for a report gallery's clean and adversarial faces ([K, C, H, W] float arrays
    in [0, 1]) on the model's device; (None, None) when the model has no spatial feature map."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        return tuple(gradcam(model, torch.as_tensor(a, dtype=torch.float32, device=device))
                     for a in (clean, adv))
    except ConfigError:
        return None, None


def overlay(crop: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """``crop`` (uint8 HxWx3) with ``heat`` ([h, w] in [0, 1], resized to HxW) blended on top through a
    matplotlib colormap; ``alpha`` is the heatmap's weight. Returns uint8 HxWx3."""
    from matplotlib import colormaps

    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ConfigError(f"overlay needs an HxWx3 crop, got shape {crop.shape}")
    h, w = crop.shape[:2]
    heat = np.clip(np.asarray(heat, np.float32), 0, 1)
    if heat.shape != (h, w):
        heat = np.asarray(Image.fromarray(heat).resize((w, h), Image.BILINEAR))
    colour = colormaps[cmap](heat)[..., :3] * 255.0
    return np.clip((1 - alpha) * crop.astype(np.float32) + alpha * colour, 0, 255).round().astype(np.uint8)


def side_by_side(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The crop and its Grad-CAM overlay next to each other (uint8 H x 2W x 3)."""
    return np.concatenate([crop, overlay(crop, heat)], axis=1)


def write_explanations(out_dir: str | Path, results: Sequence) -> Path:
    """Write ``out_dir/NNN_<input stem>/f<frame>_face<k>.png`` (crop | Grad-CAM overlay, atomic) for each
    face of each result and ``out_dir/index.json`` listing them with their scores; returns the index.

    ``results``: :class:`deepshield.predict.MediaResult` objects predicted with ``explain=True``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--explain {out}: exists and is not a folder; pass a folder for the heatmaps")
    inputs = []
    for i, r in enumerate(results):
        folder = f"{i:03d}_{_safe(Path(r.path).stem)}"
        faces = []
        for face, crop, heat in zip(r.faces, r.crops or [], r.heatmaps or [], strict=False):
            name = f"{folder}/f{face.frame_index:05d}_face{face.face_index}.png"
            image = Image.fromarray(side_by_side(crop, heat))
            atomic_write(out / name, lambda tmp, im=image: im.save(tmp, format="png"))
            faces.append({"frame_index": face.frame_index, "timestamp_s": face.timestamp_s,
                          "face_index": face.face_index, "p_fake": face.p_fake, "image": name})
        inputs.append({"path": r.path, "status": r.status, "p_fake": r.p_fake, "label": r.label,
                       "faces": faces})
    index = {"about": "each image: the face crop the model saw | Grad-CAM of 'fake' over it (red: strongest "
                      "evidence for fake; Selvaraju et al. 2017)", "inputs": inputs}
    return write_json_atomic(out / "index.json", index)


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60] or "input"


__all__ = ["find_layer", "gallery_heatmaps", "gradcam", "overlay", "side_by_side", "write_explanations"]
