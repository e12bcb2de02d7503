"""End to end in real headless Chromium: the served page classifies an Oxford photo; the report renders.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package (dev extra);
skipped with the reason when any is missing.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferlab as tl

from ..conftest import OXFORD_MINI, needs_oxford

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="headless Chromium not found (apt-get install chromium chromium-driver)"),
]
BREEDS = ("Abyssinian", "Bengal", "american_bulldog")


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _serve_in_thread(app) -> tuple[str, object]:
    """Serve ``app`` on 127.0.0.1 from a thread; the server binds port 0 and reports the port it got (a port
    found free and bound again later can be taken in between)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


@needs_oxford
def test_page_shows_the_breed_of_an_uploaded_oxford_photo(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from transferlab.serve import create_app

    # A small real run: the bundled lite0 probed on 8 trainval photos per breed (seconds, offline).
    train_names = {b: [] for b in BREEDS}
    for line in (OXFORD_MINI / "annotations" / "trainval.txt").read_text().split("\n"):
        name = line.split(" ")[0]
        breed = next((b for b in BREEDS if name.rsplit("_", 1)[0] == b), None)
        if breed and len(train_names[breed]) < 8 and (OXFORD_MINI / "images" / f"{name}.jpg").is_file():
            train_names[breed].append(name)
    for breed, names in train_names.items():
        (tmp_path / "data" / breed).mkdir(parents=True)
        for n in names:
            (tmp_path / "data" / breed / f"{n}.jpg").symlink_to(OXFORD_MINI / "images" / f"{n}.jpg")
    ds = tl.load_dataset(tmp_path / "data", val_frac=0.25, test_frac=0.0)
    run = tl.train(ds, "efficientnet_lite0", cache_dir=tmp_path / "cache", precision="fp32")
    test_names = [line.split(" ")[0] for line in (OXFORD_MINI / "annotations" / "test.txt").read_text().split("\n") if line.startswith("Bengal_")]
    photo = OXFORD_MINI / "images" / f"{test_names[0]}.jpg"
    expected = run.predict([photo], precision="fp32")[0]["top"][0]["label"]

    url, server = _serve_in_thread(create_app(run))
    try:
        browser.get(url)
        browser.find_element(By.ID, "file").send_keys(str(photo))
        label = WebDriverWait(browser, 120).until(EC.presence_of_element_located((By.ID, "label")))
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .row")
        WebDriverWait(browser, 60).until(lambda d: (d.find_element(By.ID, "cam").get_attribute("src") or "").startswith("data:image/png"))
        assert label.text == expected == "Bengal"
        assert len(bars) == 3 and bars[0].find_element(By.CSS_SELECTOR, ".label").text == "Bengal"
        assert "doesn't look like" not in browser.find_element(By.ID, "verdict").text
        browser.save_screenshot(str(tmp_path / "page.png"))

        # a photo of none of the breeds: black and white stripes (a texture); the page says so, closest guess underneath
        stripes = tmp_path / "stripes.png"
        Image.fromarray((((np.indices((256, 256)).sum(0) // 16) % 2) * 255).astype(np.uint8)).convert("RGB").save(stripes)
        assert run.predict([stripes], precision="fp32")[0]["label"] is None
        browser.find_element(By.ID, "file").send_keys(str(stripes))
        WebDriverWait(browser, 120).until(lambda d: "doesn't look like" in d.find_element(By.ID, "verdict").text)
        verdict = browser.find_element(By.ID, "verdict").text
        assert "This doesn't look like any of the 3 classes" in verdict and "Closest guess" in verdict
        assert browser.find_element(By.ID, "label").text in BREEDS
    finally:
        server.should_exit = True


def test_report_renders_with_every_section(browser, tiny_run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from transferlab.tasks.report import SECTIONS

    path = tl.report(tl.load(tiny_run_dir), tmp_path / "report.html", dream_steps=2, gradcam_samples=2)
    browser.get(path.as_uri())
    for key in SECTIONS:
        section = browser.find_element(By.ID, key)
        assert section.is_displayed() and section.find_element(By.TAG_NAME, "h2").text
    images = browser.find_elements(By.TAG_NAME, "img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", im) > 0 for im in images)  # every embedded image decoded


def test_audit_page_opens_offline_with_every_section_sortable(browser, tiny_weights: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from ..audit.test_audit import _collection
    from ..conftest import TINY

    _collection(tmp_path / "photos")
    result = tl.audit(tl.load_dataset(tmp_path / "photos"), TINY, weights=tiny_weights, precision="fp32", out=tmp_path / "audit")
    browser.get(result.files["html"].as_uri())
    for key in ("duplicates", "labels", "outliers", "balance"):
        section = browser.find_element(By.ID, key)
        assert section.is_displayed() and section.find_element(By.TAG_NAME, "h2").text
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 2 * 2 + 2 and all(browser.execute_script("return arguments[0].naturalWidth", im) > 0 for im in images)
    duplicates = browser.find_element(By.ID, "duplicates")
    assert "train/test leakage" in duplicates.text and "mirrored_dog_1.jpg" in duplicates.text
    scores = lambda: [float(c.get_attribute("data-score")) for c in duplicates.find_elements(By.CSS_SELECTOR, ".card")]  # noqa: E731
    duplicates.find_elements(By.TAG_NAME, "button")[1].click()  # lowest first
    assert scores() == sorted(scores()) and len(scores()) == 2
    duplicates.find_elements(By.TAG_NAME, "button")[0].click()
    assert scores() == sorted(scores(), reverse=True)
