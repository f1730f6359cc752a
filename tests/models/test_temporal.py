"""models.temporal: the video head starts as log-odds averaging, round-trips through one file, and an image
falls back to the frame model; the log-odds aggregations on hand-checkable numbers."""

import numpy as np
import pytest
import torch

from deepshield.config import TrainConfig
from deepshield.contracts.aggregate import AGGREGATIONS
from deepshield.errors import DataError
from deepshield.models import build_model
from deepshield.models.loading import FORMAT, CheckpointError
from deepshield.models.temporal import (
    HeadConfig,
    TemporalHead,
    VideoModel,
    embed_frames,
    even_indices,
    load_video_model,
    save_video_model,
    video_score,
)

S = 32


@pytest.fixture()
def frame_model():
    torch.manual_seed(0)
    return build_model("small_cnn").eval()  # embeddings: 32 channels


def _video(frame_model, frames=8, embeddings=True):
    return VideoModel(frame_model, TemporalHead(HeadConfig(frames=frames, dim=32, width=8,
                                                           embeddings=embeddings)), image_size=S).eval()


def _perturb(head):
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))


def test_embeddings_are_what_the_classifier_reads(frame_model):
    x = torch.rand(5, 3, S, S)
    emb, lo = embed_frames(frame_model, x)
    logits = frame_model(x)
    assert emb.shape == (5, 32) and lo.shape == (5,)
    assert torch.allclose(frame_model.head(emb), logits, atol=1e-5)
    assert torch.allclose(torch.sigmoid(lo), torch.softmax(logits, 1)[:, 1], atol=1e-6)


@pytest.mark.parametrize("embeddings,kernel", [(True, 3), (False, 3), (True, 1)])
def test_head_at_init_is_mean_logodds(embeddings, kernel):
    torch.manual_seed(1)
    head = TemporalHead(HeadConfig(frames=6, dim=10, width=4, embeddings=embeddings, kernel=kernel)).eval()
    emb, lo = torch.randn(3, 6, 10), 4 * torch.randn(3, 6)
    p = torch.sigmoid(head(emb, lo)).detach().numpy()
    want = [AGGREGATIONS["mean_logodds"](torch.sigmoid(row).double().numpy()) for row in lo]
    assert p.shape == (3,) and np.allclose(p, want, atol=1e-5)
    _perturb(head)  # a trained head is no longer the average
    assert not np.allclose(torch.sigmoid(head(emb, lo)).detach().numpy(), want, atol=1e-3)


@torch.no_grad()
def test_video_model_shapes_and_image_fallback(frame_model):
    video = _video(frame_model)
    frames = torch.rand(2, 8, 3, S, S)
    assert video(frames).shape == (2,)
    one = torch.rand(1, 3, S, S)
    p, note = video_score(video, one)
    assert p == pytest.approx(float(torch.softmax(frame_model(one), 1)[0, 1]), abs=1e-6)
    assert note == "1 frame: frame model score, the temporal head needs >= 2"
    p8, note8 = video_score(video, frames[0])
    assert note8 == "" and p8 == pytest.approx(float(video(frames[:1])[0]), abs=1e-6)
    _, note3 = video_score(video, frames[0, :3])
    assert note3 == "3 frames: repeated to the head's 8"
    with pytest.raises(DataError, match="no frames"):
        video_score(video, torch.rand(0, 3, S, S))


def test_even_indices_spread_over_time():
    assert even_indices(32, 4).tolist() == [0, 10, 21, 31]
    assert even_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]


def test_video_checkpoint_is_one_self_contained_file(frame_model, tmp_path):
    video = _video(frame_model)
    _perturb(video.head)
    frame_ckpt = {"format": FORMAT, "model": frame_model.state_dict(), "optimizer": {"lr": 1.0},
                  "config": TrainConfig(backbone="small_cnn", image_size=S).to_dict()}
    path = save_video_model(tmp_path / "video.pt", video, frame_ckpt, metrics={"auc": 0.9})
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "video" and "optimizer" not in raw["frame"] and raw["metrics"] == {"auc": 0.9}
    loaded, cfg, config = load_video_model(path, torch.device("cpu"))
    assert cfg.backbone == "small_cnn" and config["image_size"] == S and loaded.image_size == S
    assert loaded.head.cfg == video.head.cfg and not loaded.training
    frames = torch.rand(2, 8, 3, S, S)
    assert torch.allclose(loaded(frames), video(frames), atol=1e-6)


def test_foreign_files_fail_in_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_video_model(tmp_path / "missing.pt", torch.device("cpu"))
    torch.save({"format": FORMAT, "model": {}}, tmp_path / "frame.pt")
    with pytest.raises(CheckpointError, match="--checkpoint"):
        load_video_model(tmp_path / "frame.pt", torch.device("cpu"))


def test_logodds_aggregations_by_hand():
    mean_lo, topk = AGGREGATIONS["mean_logodds"], AGGREGATIONS["topk_logodds"]
    assert mean_lo(np.array([0.5, 0.9])) == pytest.approx(0.75)  # sigmoid((0 + log 9) / 2) = 3/4
    assert mean_lo(np.array([0.0, 1.0])) == pytest.approx(0.5)   # clipped, still finite
    assert topk(np.array([0.1, 0.2, 0.5, 0.9])) == pytest.approx(0.9)  # k = 1 of 4
    assert topk(np.array([0.1] * 6 + [0.9, 0.5])) == pytest.approx(0.75)  # k = 2 of 8: 0.9 and 0.5
    assert topk(np.array([0.3])) == pytest.approx(0.3)


def test_kernel_1_is_blind_to_frame_order():
    torch.manual_seed(2)
    emb, lo = torch.randn(2, 6, 10), torch.randn(2, 6)
    perm = torch.randperm(6)
    for kernel, blind in ((1, True), (3, False)):
        head = TemporalHead(HeadConfig(frames=6, dim=10, width=4, kernel=kernel)).eval()
        _perturb(head)
        same = torch.allclose(head(emb, lo), head(emb[:, perm], lo[:, perm]), atol=1e-5)
        assert same == blind
