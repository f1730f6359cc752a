"""The page in headless Chromium (Playwright, the system's /usr/bin/chromium; never a downloaded browser):
a real FF++ fake gets its verdict, timeline and heatmaps; bad and over-limit files get their message."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepshield.config import ServeConfig
from deepshield.serve import BackgroundServer, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

if not CHROMIUM.is_file():
    pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) for the browser "
                "tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def default_server():
    """The bundled model, 4 frames per video (the verdict on this fake is 0.99 with any frames)."""
    with BackgroundServer(create_app(ServeConfig(checkpoint="default", frames=4))) as server:
        yield server


@pytest.fixture(scope="module")
def small_limit_server(tiny_checkpoint, tiny_predictor):
    cfg = ServeConfig(checkpoint=str(tiny_checkpoint), max_upload_mb=0.05)
    with BackgroundServer(create_app(cfg, predictor=tiny_predictor)) as server:
        yield server


def _page(browser, server):
    page = browser.new_page()
    page.set_default_timeout(90_000)
    page.goto(server.url)
    page.wait_for_function("() => document.getElementById('limit').textContent.length > 0")
    return page


def test_fake_video_gets_verdict_timeline_and_heatmaps(browser, default_server, fake_video, tmp_path):
    page = _page(browser, default_server)
    assert "tf_efficientnet_lite0" in page.inner_text("#model-line")
    page.set_input_files("#file", str(fake_video))
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict") == "FAKE"
    detail = page.inner_text("#verdict-detail")
    assert "519_515.mp4" in detail and "p(fake)" in detail
    assert page.locator("#timeline circle.dot").count() >= 2
    assert page.locator("#timeline path.curve").count() == 1
    heatmaps = page.locator("img.heatmap")
    assert heatmaps.count() >= 1
    assert heatmaps.first.evaluate("img => img.complete && img.naturalWidth") == 128
    assert "Attack alarm" in page.inner_text("#alarm")
    assert "0.927" in page.inner_text("#model")              # the model card's DFDC test AUC
    shot = tmp_path / "verdict.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_the_page_lets_a_user_pick_the_robust_model_and_says_which_judged(browser, default_server,
                                                                          fake_video):
    page = _page(browser, default_server)
    options = page.locator("#model-pick option").all_inner_texts()
    assert options == ["default", "robust"] and page.locator("#model-pick-line").is_visible()
    page.select_option("#model-pick", "robust")
    page.set_input_files("#file", str(fake_video))
    page.wait_for_selector("#result:not([hidden])")
    assert "model robust" in page.inner_text("#verdict-detail")
    model = page.inner_text("#model")
    assert "robust" in model and "adversarial training\tnone" not in model
    page.close()


def test_text_file_named_mp4_shows_an_error(browser, small_limit_server, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 20)
    page = _page(browser, small_limit_server)
    page.set_input_files("#file", str(fake))
    page.wait_for_selector("#error:not([hidden])")
    assert "cannot read the upload" in page.inner_text("#error")
    assert page.locator("#result").is_hidden()
    page.close()


def test_over_limit_file_shows_the_limit(browser, small_limit_server, face_png):
    page = _page(browser, small_limit_server)
    page.set_input_files("#file", str(face_png))            # refused by the page before uploading
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error").startswith("astronaut.png is 0.")
    assert "upload limit of 0.05 MB" in page.inner_text("#error")

    def hide_limit(route):                                   # the page no longer knows the limit: the
        body = route.fetch().json()                          # server has to refuse the upload (413)
        route.fulfill(json={**body, "max_upload_bytes": 10**12})

    page.route("**/api/health", hide_limit)
    page.set_input_files("#file", str(face_png))
    page.wait_for_function("() => document.getElementById('error').textContent.startsWith('the file is')")
    assert page.locator("#error").is_visible()
    message = page.inner_text("#error")
    assert message.startswith("the file is larger than this server's upload limit of 0.05 MB")
    assert "--max-upload-mb" in message
    page.close()
