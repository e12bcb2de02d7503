"""The web service, in-process: answers for good photos, one-sentence 4xx JSON for every bad request."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

import transferlab as tl

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from transferlab.serve import ServeConfig, create_app, set_threshold  # noqa: E402


def jpeg(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tiny_run_dir: Path) -> TestClient:
    return TestClient(create_app(tl.load(tiny_run_dir), ServeConfig(max_bytes=200_000, max_pixels=1_000_000, max_files=3)))


def test_predict_agrees_with_the_library_for_one_and_several_photos(client: TestClient, tiny_run_dir: Path) -> None:
    run = tl.load(tiny_run_dir)
    photos = [next(Path(run.meta["data"]["root"]).glob(f"{c}/*_3.jpg")) for c in ("fox", "cat")]
    reply = client.post("/predict?k=2", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos])
    assert reply.status_code == 200
    results = reply.json()["results"]
    expected = run.predict(photos, k=2, precision="fp32")
    assert [r["filename"] for r in results] == [p.name for p in photos]  # upload order kept
    for got, want in zip(results, expected):
        assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
        assert got["top"][0]["prob"] == pytest.approx(want["top"][0]["prob"], abs=1e-4)
        assert got["gradcam"] is None  # only on request


def test_gradcam_overlay_is_a_png_of_the_model_view(client: TestClient, tiny_run_dir: Path) -> None:
    import base64

    reply = client.post("/predict?gradcam=true", files={"files": ("a.jpg", jpeg(), "image/jpeg")})
    url = reply.json()["results"][0]["gradcam"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size[::-1] == tuple(tl.load(tiny_run_dir).model.preprocess.input_size)
    # the page shows the model's crop beside the overlay, so the two line up pixel for pixel
    view = reply.json()["results"][0]["input"]
    assert Image.open(io.BytesIO(base64.b64decode(view.split(",", 1)[1]))).size == image.size


def test_the_page_and_the_card_ask_the_runs_own_question(client: TestClient) -> None:
    # regression: every model was "Pet nursery: which breed is it?", breeds or not
    page = client.get("/").text
    assert "<h1>photos: which of the 3 classes is it?</h1>" in page and "breed" not in page
    assert client.get("/model").json()["task"] == "photos: which of the 3 classes is it?"


def test_unsure_follows_the_threshold_stored_with_the_run(tiny_run_dir: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = shutil.copytree(tiny_run_dir, tmp_path / "run")
    set_threshold(run_dir, 0.999999)
    run = tl.load(run_dir)
    run.confidence.temperature = 100.0  # probabilities near 1/3: not sure, whatever the photo
    client = TestClient(create_app(run))
    assert client.get("/model").json()["unsure_below"] == 0.999999
    photo = next(Path(run.meta["data"]["root"]).glob("fox/*_1.jpg"))  # one of the run's own kind: "not sure" is for these
    upload = {"files": (photo.name, photo.read_bytes(), "image/jpeg")}
    result = client.post("/predict", files=upload).json()
    assert result["results"][0]["in_distribution"] is True
    assert result["results"][0]["unsure"] is True and result["unsure_below"] == 0.999999
    set_threshold(run_dir, 0.0)
    run = tl.load(run_dir)
    run.confidence.temperature = 100.0
    result = TestClient(create_app(run)).post("/predict", files=upload).json()
    assert result["results"][0]["unsure"] is False


def test_none_of_these_gives_a_null_label_the_closest_guess_and_no_unsure(tiny_run_dir: Path) -> None:
    from transferlab.models.confidence import Confidence

    run = tl.load(tiny_run_dir)
    run.confidence = Confidence(temperature=run.confidence.temperature, method="msp", threshold=1.01, accept=0.95)  # rejects every photo
    client = TestClient(create_app(run))
    r = client.post("/predict?k=2", files={"files": ("a.jpg", jpeg(), "image/jpeg")}).json()["results"][0]
    assert r["label"] is None and r["in_distribution"] is False and r["unsure"] is False and r["n_classes"] == 3
    assert r["top"][0]["label"] in run.classes and isinstance(r["score"], float)  # the closest guess, still shown
    assert client.get("/model").json()["ood"]["method"] == "msp"


def test_model_card_health_page_and_openapi(client: TestClient, tiny_run_dir: Path) -> None:
    card = client.get("/model").json()
    meta = json.loads((tiny_run_dir / "model.json").read_text())
    assert card["classes"] == ["cat", "dog", "fox"] and card["metrics"]["accuracy"] == meta["metrics"]["accuracy"]
    assert client.get("/health").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "predict" in page.text
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/model", "/health"} <= set(schema["paths"])


def _truncated_jpeg() -> bytes:
    """A noisy JPEG cut in half: the header reads, the pixels do not."""
    import numpy as np

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _png_bomb() -> bytes:
    """A 2000x2000 PNG of one colour: a few kB on the wire, 4 MP (over the test's 1 MP limit) decoded."""
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "files, data, status, words",
    [
        ({"image": ("a.jpg", jpeg(), "image/jpeg")}, None, 422, "field named 'files'"),
        (None, {"files": "not a file"}, 422, "upload the photo as a file"),
        (None, None, 422, "field named 'files'"),
        ({"files": ("empty.jpg", b"", "image/jpeg")}, None, 400, "empty"),
        ({"files": ("notes.txt", b"hello, not a photo", "text/plain")}, None, 415, "not an image"),
        ({"files": ("cut.jpg", _truncated_jpeg(), "image/jpeg")}, None, 415, "could not be decoded"),
        ({"files": ("big.bin", b"\xff" * 250_000, "image/jpeg")}, None, 413, "limit"),
        ({"files": ("bomb.png", _png_bomb(), "image/png")}, None, 413, "decompression bomb"),
    ],
)
def test_bad_requests_get_one_sentence_4xx(client: TestClient, files, data, status, words) -> None:
    reply = client.post("/predict", files=files, data=data)
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert words in message and "\n" not in message and "Traceback" not in message


def test_too_many_files_and_bad_k_are_4xx(client: TestClient) -> None:
    four = [("files", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(4)]
    assert client.post("/predict", files=four).status_code == 413
    reply = client.post("/predict?k=zero", files={"files": ("a.jpg", jpeg(), "image/jpeg")})
    assert reply.status_code == 422 and reply.json()["error"].startswith("invalid k")


def test_oversized_request_is_refused_before_reading(client: TestClient) -> None:
    reply = client.post("/predict", content=b"x" * 10, headers={"content-length": str(10**10), "content-type": "multipart/form-data; boundary=x"})
    assert reply.status_code == 413 and "larger than" in reply.json()["error"]


def test_cli_serve_save_threshold_needs_a_value(capsys, monkeypatch, tiny_run_dir: Path) -> None:
    from transferlab.cli import main

    monkeypatch.setattr(sys, "argv", ["transferlab", "serve", str(tiny_run_dir), "--save-threshold"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1 and "--threshold" in capsys.readouterr().err
