"""Fixtures for evaluation tests: small test sets, a catalog-like dataset, a gradient-masked model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from deepshield.data.synthetic import SyntheticDeepfakeDataset


class VideoFrames(Dataset):
    """Synthetic faces posing as catalog frames: items (x, y, video_id), 4 frames per video, and
    ``video_methods`` like FaceCatalogDataset (reals "original", fakes alternate two methods)."""

    def __init__(self, n_videos: int = 16, frames: int = 4, image_size: int = 32, seed: int = 5) -> None:
        base = SyntheticDeepfakeDataset(n_videos * frames, image_size=image_size, seed=seed)
        # Synthetic labels alternate 0/1: regroup so each video's frames share one label.
        order = torch.cat([torch.nonzero(base.labels == lab).squeeze(1) for lab in (0, 1)])
        self.images, self.labels = base.images[order], base.labels[order]
        self.vids = [f"ds/v{i // frames:03d}" for i in range(len(order))]
        self.video_methods = {}
        for i, v in enumerate(self.vids):
            fake = int(self.labels[i]) == 1
            self.video_methods[v] = ("Deepfakes", "FaceSwap")[(i // frames) % 2] if fake else "original"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i]), self.vids[i]


class Quantize(nn.Module):
    """x -> round(x * levels) / levels: a non-differentiable input layer (its gradient is 0 everywhere),
    the textbook gradient-masking "defense" (Athalye et al., 2018)."""

    def __init__(self, levels: int = 8) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels


@pytest.fixture(scope="session")
def test_faces():
    """128 synthetic test faces at 32 px, a seed unseen by ``trained_cnn``."""
    return SyntheticDeepfakeDataset(128, image_size=32, seed=4242)


@pytest.fixture(scope="session")
def video_frames():
    return VideoFrames()


@pytest.fixture(scope="session")
def masked_cnn():
    """A SmallCNN trained *behind* an 8-level quantizer: accurate on clean inputs, but its input gradient
    is exactly zero, so gradient attacks see nothing while the decision can still be flipped."""
    from torch.utils.data import DataLoader

    from deepshield.models import build_model

    torch.manual_seed(1)
    ds = SyntheticDeepfakeDataset(1024, image_size=32, seed=1)
    model = nn.Sequential(Quantize(8), build_model("small_cnn"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):
        for x, y in DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()
