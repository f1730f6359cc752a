"""What the page shows, as JSON: a ``MediaResult`` plus the model's name and model-card numbers.

Face crops and their Grad-CAM overlays travel as base64 PNG data URLs, for at most ``GALLERY`` faces
spread evenly over the video (every face still has its point on the timeline).

    >>> payload = result_json(result, model, threshold=0.37, threshold_source="calibrated: EER of ...",
    ...                       filename="clip.mp4", seconds=4.2)
    >>> payload["label"], payload["timeline"][0]       # "FAKE", {"t": 0.2, "frame": 5, "p_fake": 0.91}
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepshield.contracts.alarm import AlarmReport
from deepshield.models.zoo import BUNDLED, WEIGHTS_DIR

GALLERY = 12
MODEL_CARDS = {name: WEIGHTS_DIR / ("MODEL_CARD.md" if name == "default" else f"MODEL_CARD_{name}.md")
               for name in BUNDLED}
_ROW = re.compile(r"^\|\s*(?P<key>[^|]+?)\s*\|\s*(?P<value>[^|]+?)\s*\|\s*$")


def png_data_url(image: np.ndarray) -> str:
    """uint8 HxWx3 -> ``data:image/png;base64,...``."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def card_numbers(card: Path) -> list[list[str]]:
    """The rows (key, value) of the table under a model card's "## Numbers" heading."""
    rows: list[list[str]] = []
    section = False
    for line in card.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line.strip().lower().startswith("## numbers")
            continue
        match = _ROW.match(line) if section else None
        if match and not set(match["value"]) <= set("-: ") and match["key"].strip():
            rows.append([match["key"].strip(), match["value"].replace("**", "").strip()])
    return rows


def model_info(checkpoint: str, train_cfg: Any, threshold: tuple[float, str] | None = None) -> dict[str, Any]:
    """Name, architecture, operating threshold (value, where it comes from) and (for a bundled model) its
    model card's numbers."""
    card = MODEL_CARDS.get(checkpoint)
    value, source = threshold if threshold is not None else (None, None)
    return {"checkpoint": checkpoint if checkpoint in BUNDLED else Path(checkpoint).name,
            "threshold": value, "threshold_source": source,
            "backbone": getattr(train_cfg, "backbone", None),
            "image_size": getattr(train_cfg, "image_size", None),
            "adv": getattr(train_cfg, "adv", None),
            "card": card_numbers(card) if card is not None and card.is_file() else [],
            "card_url": (f"/api/model-card?model={checkpoint}" if card is not None and card.is_file()
                         else None)}


def _gallery_indices(n: int, k: int = GALLERY) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, k))}) if n else []


def _faces(result: Any, overlay: Any) -> list[dict[str, Any]]:
    crops = getattr(result, "crops", None) or []
    heatmaps = getattr(result, "heatmaps", None) or []
    out = []
    for i in _gallery_indices(len(crops)):
        face = result.faces[i]
        item = {"frame": face.frame_index, "t": face.timestamp_s, "p_fake": round(face.p_fake, 4),
                "crop": png_data_url(crops[i]), "heatmap": None}
        if overlay is not None and i < len(heatmaps) and heatmaps[i] is not None:
            item["heatmap"] = png_data_url(overlay(crops[i], heatmaps[i]))
        out.append(item)
    return out


def _overlay():
    try:
        from deepshield.explain import overlay
    except ImportError:  # an install without Grad-CAM: crops only
        return None
    return overlay


def _alarm_json(report: AlarmReport | None) -> dict | None:
    return None if report is None else jsonable(report.to_json())


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, and tuples, turned into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def result_json(result: Any, model: dict[str, Any], threshold: float, filename: str, seconds: float,
                warnings: list[str] | None = None, threshold_source: str | None = None) -> dict[str, Any]:
    """The page's view of one analysed file (a ``deepshield.predict.MediaResult``), judged at ``threshold``
    (``threshold_source``: where it comes from, e.g. "calibrated: EER of the validation videos of dfdc")."""
    no_face = getattr(result, "no_face_frames", None) or []
    return {
        "file": filename, "status": result.status, "label": result.label,
        "p_fake": None if result.p_fake is None else round(float(result.p_fake), 4), "threshold": threshold,
        "threshold_source": threshold_source, "frames_sampled": result.frames_sampled,
        "faces_found": len(result.faces),
        "timeline": [{"frame": f.frame_index, "t": f.timestamp_s, "face": f.face_index,
                      "p_fake": round(f.p_fake, 4)} for f in result.faces],
        "no_face_frames": [{"frame": int(i), "t": round(float(t), 3)} for i, t in no_face],
        "faces": _faces(result, _overlay()),
        "alarm": _alarm_json(getattr(result, "alarm", None)),
        "model": model, "warnings": list(warnings or []), "seconds": round(seconds, 2),
    }


__all__ = ["GALLERY", "MODEL_CARDS", "card_numbers", "jsonable", "model_info", "png_data_url",
           "result_json"]
