"""How faces are found and cut out of frames: one record from preprocessing to the checkpoint to predict.

``deepshield preprocess`` writes these settings (``preprocess.json`` beside the catalog); training copies
them into the checkpoint (``config["preprocess"]``); ``predict``, ``serve``, ``export`` and ``attack``
read them back so a user's video is cropped as the training crops were.

    >>> s = CropSettings.from_json(json.loads(Path("faces/preprocess.json").read_text()))
    >>> s.margin, s.size, s.to_json()["detector"]         # 1.3, 224, "mtcnn"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from deepshield.errors import ConfigError

DEFAULT_FRAMES_PER_VIDEO = 32  # frames sampled evenly per video when neither fps nor a count is given


@dataclass(frozen=True)
class CropSettings:
    """Face detection and crop settings.

    ``detector``: face detector name; ``min_score``: its confidence a face needs, in [0, 1];
    ``max_side``: longest frame side (px) the detector's first stage sees; ``min_face_size``: the smallest
    face (px, full frame) it looks for. ``faces``: ``largest`` (one per frame) or ``all``. The crop is a
    square of ``margin`` x the face box's longer side, its centre moved down by ``shift`` x that side,
    resized to ``size`` px. ``fps`` or ``frames_per_video``: how frames are sampled (neither: 32 evenly
    spaced). ``layout``: the dataset layout the crops came from (None outside preprocessing).
    """

    detector: str = "mtcnn"
    margin: float = 1.3
    shift: float = 0.0
    size: int = 224
    min_score: float = 0.9
    faces: str = "largest"
    max_side: int = 640
    min_face_size: int = 40
    fps: float | None = None
    frames_per_video: int | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"face min score {self.min_score}: must be in [0, 1]")
        if self.frames_per_video is not None and self.frames_per_video < 1:
            raise ConfigError(f"frames per video {self.frames_per_video}: must be >= 1")

    @property
    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for ``deepshield.data.video.read_media``."""
        if self.fps is not None:
            return {"fps": self.fps, "num_frames": None}
        return {"fps": None, "num_frames": self.frames_per_video or DEFAULT_FRAMES_PER_VIDEO}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None, **defaults: Any) -> CropSettings:
        """Settings from a dict that may hold more keys (a whole preprocess.json) or fewer (an old run):
        missing or null values take ``defaults``, then the class defaults (``fps``/``frames_per_video``
        stay None)."""
        d = d or {}
        out = {}
        for f in fields(cls):
            value = d.get(f.name)
            if value is None:
                value = defaults.get(f.name, f.default)
            out[f.name] = value
        return cls(**out)

    def override(self, **values: Any) -> CropSettings:
        """These settings with the values that are not None replaced (command-line flags)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


__all__ = ["DEFAULT_FRAMES_PER_VIDEO", "CropSettings"]
