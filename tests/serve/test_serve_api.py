"""``deepshield serve``'s JSON API (FastAPI TestClient): verdicts, bad uploads, limits, queue, timeout."""

from __future__ import annotations

import base64
import io
import tempfile
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepshield.config import ServeConfig
from deepshield.serve import create_app


@pytest.fixture()
def temp_root(tmp_path, monkeypatch):
    """Uploads land in this folder, so a test can see that they are deleted."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture()
def client(tiny_checkpoint, tiny_predictor):
    app = create_app(ServeConfig(checkpoint=str(tiny_checkpoint)), predictor=tiny_predictor)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _upload(client, path, name=None, **params):
    with open(path, "rb") as f:
        return client.post("/api/predict", params=params, files={"file": (name or path.name, f, "video/mp4")})


def _png_size(data_url: str) -> tuple[int, int]:
    head, _, b64 = data_url.partition(",")
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def test_health_reports_model_limits_and_queue(client, tiny_checkpoint):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["max_upload_bytes"] == 200_000_000
    assert body["queue"] == {"active": 0, "limit": 4} and body["job_timeout_s"] == 120
    assert body["model"]["backbone"] == "small_cnn" and body["model"]["image_size"] == 32
    assert body["model"]["checkpoint"] == "best.pt" and body["model"]["card"] == []
    assert body["model"]["threshold"] == 0.5 and body["model"]["threshold_source"].startswith("default 0.5")


def test_image_gets_a_verdict_crops_heatmaps_and_the_upload_is_deleted(client, face_png, temp_root):
    r = _upload(client, face_png, name="../../etc/passwd.png")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["file"] == "passwd.png"  # the client's name is a label only, never a path
    assert body["status"] == "ok" and body["label"] in ("REAL", "FAKE") and 0 <= body["p_fake"] <= 1
    assert body["frames_sampled"] == 1 and body["faces_found"] == len(body["timeline"]) >= 1
    assert body["threshold"] == 0.5 and body["no_face_frames"] == []
    assert body["threshold_source"] == "default 0.5: the model has no calibrated threshold"
    face = body["faces"][0]
    assert _png_size(face["crop"]) == (32, 32)
    assert face["heatmap"] is not None and _png_size(face["heatmap"]) == (32, 32)
    assert body["alarm"] is None or {"score", "threshold", "flagged"} <= set(body["alarm"])
    assert list(temp_root.iterdir()) == []


def test_image_without_a_face_is_reported_as_such(client, tmp_path):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((96, 96), Image.BICUBIC)
    noise.save(tmp_path / "noise.jpg")
    body = _upload(client, tmp_path / "noise.jpg").json()
    assert body["status"] == "no_face" and body["label"] is None and body["p_fake"] is None
    assert body["no_face_frames"] == [{"frame": 0, "t": 0.0}] and body["faces"] == body["timeline"] == []


def test_video_timeline_has_one_point_per_face(client, fake_video):
    r = _upload(client, fake_video)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["frames_sampled"] == 2
    assert [p["frame"] for p in body["timeline"]] == sorted(p["frame"] for p in body["timeline"])
    assert len(body["timeline"]) + len(body["no_face_frames"]) >= 2


@pytest.mark.parametrize("content, status, words", [
    (b"this is a shopping list, not a video\n" * 20, 415, "cannot read the upload"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500, 422, "cannot read the upload"),  # damaged mp4
    (b"", 400, "empty"),
])
def test_bad_uploads_get_a_4xx_json_error_and_are_deleted(client, temp_root, content, status, words):
    r = client.post("/api/predict", files={"file": ("clip.mp4", content, "video/mp4")})
    assert r.status_code == status and words in r.json()["error"]
    assert "Traceback" not in r.text and list(temp_root.iterdir()) == []
    assert client.get("/api/health").json()["queue"]["active"] == 0


def test_requests_without_a_file_are_refused(client):
    r = client.post("/api/predict", data={"note": "hello"}, files={"other": ("a.txt", b"x")})
    assert r.status_code == 400 and "field named 'file'" in r.json()["error"]
    r = client.post("/api/predict", content=b"raw bytes",
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_upload_limit_is_enforced_while_streaming(tiny_checkpoint, tiny_predictor, face_png, temp_root):
    cfg = ServeConfig(checkpoint=str(tiny_checkpoint), max_upload_mb=0.02)  # 20 kB
    with TestClient(create_app(cfg, predictor=tiny_predictor)) as c:
        big = face_png.read_bytes()
        assert len(big) > 40_000
        r = c.post("/api/predict", files={"file": ("big.png", big, "image/png")})   # Content-Length: early
        assert r.status_code == 413 and "upload limit of 0.02 MB" in r.json()["error"]
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
        chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))                # chunked: no length
        r = c.post("/api/predict", content=chunks,
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]
        assert list(temp_root.iterdir()) == []
        small = Image.open(face_png).resize((64, 64))
        buf = io.BytesIO()
        small.save(buf, "PNG")
        assert c.post("/api/predict", files={"file": ("small.png", buf.getvalue())}).status_code == 200


def test_one_job_at_a_time_and_a_full_queue_answers_503(face_png, stub_cls):
    stub = stub_cls()
    stub.gate.clear()  # jobs block until the test opens the gate
    with TestClient(create_app(ServeConfig(queue_limit=2), predictor=stub)) as c:
        jobs = [_upload(c, face_png, wait="false") for _ in range(2)]
        assert [r.status_code for r in jobs] == [202, 202]
        full = _upload(c, face_png)
        assert full.status_code == 503 and "busy" in full.json()["error"] and full.json()["queue_limit"] == 2
        queued = c.get(jobs[1].json()["status_url"]).json()
        assert queued["state"] == "queued" and queued["position"] == 1
        stub.gate.set()
        results = [_poll(c, r.json()["status_url"]) for r in jobs]
        assert [j["state"] for j in results] == ["done", "done"] and results[0]["result"]["label"] == "FAKE"
        assert stub.max_running == 1
        assert c.get("/api/health").json()["queue"]["active"] == 0
        assert _upload(c, face_png).status_code == 200
        assert c.get("/api/jobs/nope").status_code == 404


def _poll(client, url, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


def test_job_past_its_time_limit_is_stopped_with_504(face_png, stub_cls):
    stub = stub_cls(steps=50, step_s=0.05)   # 2.5 s of "detection"
    with TestClient(create_app(ServeConfig(job_timeout=0.3), predictor=stub)) as c:
        start = time.monotonic()
        r = _upload(c, face_png)
        assert r.status_code == 504 and "--job-timeout" in r.json()["error"]
        assert time.monotonic() - start < 2.0    # stopped at the next detector batch, not at the end
        pending = _upload(c, face_png, wait="false").json()
        job = _poll(c, pending["status_url"])
        assert job["state"] == "failed" and job["status"] == 504


def test_shutdown_cancels_queued_jobs_and_deletes_their_uploads():
    import threading

    from deepshield.serve.jobs import JobQueue

    queue, gate, cleaned = JobQueue(limit=2, timeout_s=10), threading.Event(), []
    assert queue.reserve() and queue.reserve() and not queue.reserve()
    running = queue.submit(lambda job: gate.wait(10) and {"ok": True}, cleanup=lambda: cleaned.append("a"))
    queued = queue.submit(lambda job: {"ok": True}, cleanup=lambda: cleaned.append("b"))
    deadline = time.monotonic() + 10
    while running.state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.shutdown()
    assert queued.future.result(1).status == 503 and cleaned == ["b"]
    gate.set()
    assert running.future.result(10).result == {"ok": True} and cleaned == ["b", "a"]


def test_page_docs_and_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "deepshield" in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"/api/health", "/api/jobs/{job_id}"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_only_the_allowed_host_names_are_answered(tiny_checkpoint, tiny_predictor):
    from deepshield.serve.server import LOOPBACK_HOSTS

    app = create_app(ServeConfig(checkpoint=str(tiny_checkpoint)), tiny_predictor, hosts=LOOPBACK_HOSTS)
    assert TestClient(app, base_url="http://localhost:8000").get("/api/health").status_code == 200
    assert TestClient(app, base_url="http://evil.example:8000").get("/api/health").status_code == 400


def test_client_file_names_are_labels_only():
    from deepshield.serve.uploads import display_name

    assert display_name("C:\\Users\\me/../clip\x07.mp4") == "clip.mp4" and display_name("/") == "upload"


def test_default_model_card_numbers_are_served():
    from deepshield.models.zoo import WEIGHTS_DIR
    from deepshield.serve.payload import card_numbers

    rows = dict(card_numbers(WEIGHTS_DIR / "MODEL_CARD.md"))
    dfdc = rows["DFDC test AUC (2,287 faces of unseen groups) / accuracy at 0.499"]
    assert dfdc.startswith("0.927 / 0.846")


def test_serve_flags_are_checked():
    from deepshield.cli import parse_args

    args = parse_args(["serve", "--port", "8123", "--max-upload-mb", "5", "--no-explain"])
    assert args.port == 8123 and args.max_upload_mb == 5 and args.explain is False and args.check_attack
    with pytest.raises(SystemExit):
        parse_args(["serve", "--max-upload-mb", "0"])
    from deepshield.errors import ConfigError

    with pytest.raises(ConfigError, match="--job-timeout"):
        ServeConfig(job_timeout=0)
    with pytest.raises(ConfigError, match="--port"):
        ServeConfig(port=0)


def test_the_page_can_pick_another_model_loaded_on_first_use(tiny_checkpoint, tmp_path, small_face_png):
    """?model= picks one of health's models; the answer says which judged the file; others are refused."""
    from deepshield.config import TrainConfig
    from deepshield.models import build_model
    from deepshield.training.checkpoint import save_checkpoint

    other = tmp_path / "other" / "best.pt"
    other.parent.mkdir()
    save_checkpoint(other, model=build_model("small_cnn", image_size=48).state_dict(),
                    config=TrainConfig(image_size=48).to_dict())
    cfg = ServeConfig(checkpoint=str(tiny_checkpoint), models=(str(other),), frames=2)
    with TestClient(create_app(cfg), raise_server_exceptions=False) as c:
        assert c.get("/api/health").json()["models"] == [str(tiny_checkpoint), str(other)]
        assert list(c.app.state.service.predictors) == [str(tiny_checkpoint)]  # the other is not loaded yet
        first = _upload(c, small_face_png).json()
        picked = _upload(c, small_face_png, model=str(other)).json()
        assert first["model"]["image_size"] == 32 and picked["model"]["image_size"] == 48
        bad = _upload(c, small_face_png, model="nope")
        assert bad.status_code == 400 and "choose from" in bad.json()["error"]
        assert c.get("/api/model-card", params={"model": "nope"}).status_code == 404


def test_bundled_models_are_offered_with_their_cards():
    from deepshield.models.zoo import BUNDLED
    from deepshield.serve.service import model_choices

    choices = model_choices(ServeConfig())
    assert choices[0] == "default"
    assert set(choices) == {n for n, p in BUNDLED.items() if p.is_file()}
    with TestClient(create_app(ServeConfig(models=())), raise_server_exceptions=False) as c:
        card = c.get("/api/model-card", params={"model": "default"})
        assert card.status_code == 200 and "Model card" in card.text
