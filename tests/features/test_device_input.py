"""The GPU input pipeline (decode, turn, resize and crop on the device; augment per image), tested on CPU tensors.

Every function of ``device_geometry`` and ``device_input`` runs on any device, so here the device is the CPU and
torchvision's CPU JPEG decoder stands in for nvJPEG; the tests marked for CUDA run the same checks on a GPU.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from transferlab.errors import ConfigError
from transferlab.features import device_input, extract_features, features_of_images, pick_runtime
from transferlab.features.device_geometry import center_boxes, eval_view, random_crop_boxes, random_flips, resize_boxes, upright
from transferlab.features.device_input import DeviceBatches, eval_batches, use_device_decoder, using_decoder
from transferlab.features.extract import _Decoder
from transferlab.models import create_backbone
from transferlab.models.preprocess import Preprocess

from ..conftest import OXFORD_MINI, TINY, make_photo, needs_oxford

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; run on a GPU machine)")


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth, photo-like RGB image (noise would make every filter look alike)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, size[1] // 16), max(2, size[0] // 16), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "lanczos", "hamming"])
def test_device_resize_gives_pillows_pixels(interpolation: str) -> None:
    # shrinking (antialiased), enlarging (a 40-px image to 64) and odd aspect ratios, batched together
    pre = Preprocess((64, 64), interpolation=interpolation, crop_pct=0.875)
    images = [_photo(size, i) for i, size in enumerate([(500, 375), (375, 500), (120, 90), (40, 50), (333, 333)])]
    want = torch.stack([pre.to_uint8(im) for im in images]).int()
    got = eval_view(pre, [_tensor(im) for im in images]).int()
    diff = (got - want).abs()
    assert got.shape == want.shape
    assert diff.float().mean() < 0.05 and (diff > 1).float().mean() < 1e-3  # rounding only (Pillow works in fixed point)


def test_resize_of_a_batch_split_by_the_memory_budget_equals_one_pass() -> None:
    images = [_tensor(_photo(size, i)) for i, size in enumerate([(200, 150), (90, 120), (64, 64)])]
    boxes = torch.tensor([[10.5, 3.25, 180.0, 140.0], [0.0, 0.0, 90.0, 120.0], [8.0, 8.0, 56.0, 56.0]], dtype=torch.float64)
    whole = resize_boxes(images, boxes, (32, 48))
    split = resize_boxes(images, boxes, (32, 48), budget=1)  # one image at a time
    assert torch.equal(whole, split)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_as_exif_transpose_does(orientation: int) -> None:
    image = _photo((40, 24), 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif.tobytes())
    tagged = Image.open(io.BytesIO(buffer.getvalue()))
    assert torch.equal(upright(_tensor(image), orientation), _tensor(ImageOps.exif_transpose(tagged)))


def _odd_files(folder: Path) -> list[Path]:
    """Files the device decoder must not take or that are broken, between plain JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo((120, 90), 1)
    files = {"plain.jpg": None, "cmyk.jpg": "cmyk", "progressive.jpg": "progressive", "grey.jpg": "grey", "rotated.jpg": "rotated",
             "picture.png": "png", "anim.gif": "gif", "truncated.jpg": "truncated", "empty.jpg": "empty", "notes.jpg": "text", "plain2.jpg": None}
    for name, kind in files.items():
        path = folder / name
        if kind == "cmyk":
            photo.convert("CMYK").save(path, "JPEG")
        elif kind == "progressive":
            photo.save(path, "JPEG", progressive=True)
        elif kind == "grey":
            photo.convert("L").save(path, "JPEG")
        elif kind == "rotated":
            exif = Image.Exif()
            exif[0x0112] = 6
            photo.save(path, "JPEG", exif=exif.tobytes())
        elif kind in ("png", "gif"):
            photo.save(path, kind.upper())
        elif kind == "truncated":
            buffer = io.BytesIO()
            photo.save(buffer, "JPEG")
            path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("not a photo")
        else:
            photo.save(path, "JPEG", quality=90)
    return [folder / name for name in files] + [folder / "missing.jpg"]


def test_odd_and_broken_files_are_decoded_or_reported_as_the_cpu_path_does(tmp_path: Path) -> None:
    paths = _odd_files(tmp_path / "odd")
    pre = Preprocess((48, 48))
    with eval_batches(paths, pre, 4, 2, 8, CPU) as device, _Decoder(paths, pre, 4, 2, 8) as cpu:
        got, want = list(device), list(cpu)
    assert [(p, bad) for p, _, bad in got] == [(p, bad) for p, _, bad in want]  # the same files kept, the same words for the rest
    assert sum(len(bad) for _, _, bad in got) == 4  # truncated, empty, text, missing
    for (_, x, _), (_, ref, _) in zip(got, want):
        assert (x.int() - ref.int()).abs().float().mean() < 1.0  # decoders differ by rounding; a wrong turn or crop would not


def test_a_file_the_device_decoder_refuses_goes_to_the_cpu_decoder_and_the_batch_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [make_photo(tmp_path / f"{i}.jpg", i, i, size=(64, 48)) for i in range(5)]
    refused = paths[2].read_bytes()
    real = device_input._decode
    calls = []

    def picky(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        calls.append(len(datas))
        if any(bytes(d.numpy()) == refused for d in datas):
            raise RuntimeError("nvjpeg: unsupported bitstream")  # as nvJPEG fails: the whole call
        return real(datas, device)

    monkeypatch.setattr(device_input, "_decode", picky)
    pre = Preprocess((32, 32))
    with eval_batches(paths, pre, 5, 2, 8, CPU) as batches:
        [(positions, x, bad)] = list(batches)
    assert positions == [0, 1, 2, 3, 4] and bad == {}
    assert calls == [5, 1, 1, 1, 1, 1]  # the batch, then image by image
    assert (x[2].int() - pre.to_uint8(Image.open(paths[2]).convert("RGB")).int()).abs().max() <= 2


def test_decoder_choice(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"--decoder cpu"):
        use_device_decoder(CPU, "gpu")
    with pytest.raises(ConfigError, match="expected decoder"):
        use_device_decoder(CPU, "nvjpeg")
    device_input._log_fallback.cache_clear()
    with caplog.at_level(logging.INFO, logger="transferlab.features.device_input"):
        assert use_device_decoder(CPU, "auto") is False and use_device_decoder(CPU) is False
    assert [r.getMessage() for r in caplog.records] == ["decoding images on the CPU: the model runs on the CPU, not on a CUDA GPU"]  # one line, once
    with using_decoder("gpu"):
        assert device_input.current_decoder() == "gpu"
        with pytest.raises(ConfigError, match="cannot decode images on the GPU"):
            use_device_decoder(CPU)
    assert device_input.current_decoder() == "auto"


def test_extract_features_refuses_gpu_decoding_without_a_gpu_before_reading_a_file(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: gpu decoding is allowed here")
    model = create_backbone(TINY, weights=tiny_weights).model
    read = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or b"")
    with pytest.raises(ConfigError, match="--decoder cpu"):
        extract_features(model, [tmp_path / "a.jpg"], decoder="gpu")
    assert read == []


def _tv_boxes(sizes: list[tuple[int, int]], scale: tuple[float, float], ratio: tuple[float, float], seed: int) -> torch.Tensor:
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    rows = []
    for h, w in sizes:
        top, left, ch, cw = v2.RandomResizedCrop.get_params(torch.empty(1, h, w), list(scale), list(ratio))  # type: ignore[call-arg]
        rows.append([left, top, left + cw, top + ch])
    return torch.tensor(rows, dtype=torch.float64)


def test_per_image_random_crops_follow_the_cpu_recipes_statistics() -> None:
    from scipy.stats import ks_2samp

    from transferlab.data.augment import train_transform

    crop = train_transform(Preprocess((224, 224)), "light").transforms[0]  # the CPU recipe's own crop
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in zip(rng.integers(100, 700, 16000), rng.integers(100, 700, 16000))]
    sizes += [(60, 600)] * 2000  # so thin that some tries fail: the fallback crop too
    ours = random_crop_boxes(torch.tensor(sizes), torch.Generator().manual_seed(0), tuple(crop.scale), tuple(crop.ratio))
    theirs = _tv_boxes(sizes, tuple(crop.scale), tuple(crop.ratio), 1)
    area = torch.tensor([h * w for h, w in sizes], dtype=torch.float64)

    def stats(boxes: torch.Tensor) -> dict[str, np.ndarray]:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        room_x = torch.tensor([s[1] for s in sizes]) - w
        return {"scale": (w * h / area).numpy(), "log_ratio": torch.log(w / h).numpy(),
                "x": (boxes[:, 0] / room_x.clamp(min=1)).numpy()}  # where the crop sits, 0..1

    mine, ref = stats(ours), stats(theirs)
    for name in mine:
        assert ks_2samp(mine[name], ref[name]).pvalue > 1e-3, name
    assert (ours[:, 0] >= 0).all() and (ours[:, 2] <= torch.tensor([s[1] for s in sizes])).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 3] <= torch.tensor([s[0] for s in sizes])).all()
    assert torch.equal(ours, random_crop_boxes(torch.tensor(sizes), torch.Generator().manual_seed(0), tuple(crop.scale), tuple(crop.ratio)))  # seeded


def test_flips_are_drawn_per_image() -> None:
    x = torch.arange(2 * 4, dtype=torch.uint8).reshape(1, 1, 2, 4).repeat(1000, 3, 1, 1)
    flipped = random_flips(x, torch.Generator().manual_seed(0))
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert (mirrored | (flipped == x).flatten(1).all(1)).all()  # each image whole, mirrored or not
    assert 450 < int(mirrored.sum()) < 550


def test_device_training_batches_follow_the_cpu_loaders_order_and_recipe(photo_folder: Path) -> None:
    from transferlab.train.config import FinetuneConfig
    from transferlab.data.augment import train_transform
    from transferlab.train.device_loader import DeviceLoader, augment_view, batch_order
    from transferlab.train.loader import ImageFiles, make_loader

    items = [(p, i % 3) for i, p in enumerate(sorted(photo_folder.rglob("*.jpg")))]
    pre = Preprocess((32, 32))
    config = FinetuneConfig(batch_size=8)
    view = augment_view(train_transform(pre, "light", 0.5), seed=7)  # a 0.5 size ratio: 32 -> the nearest multiple of 32
    def order() -> list[list[int]]:
        return batch_order(make_loader(ImageFiles(items, pre.to_uint8), config.batch_size, True, seed=7, epoch=1))

    cpu = make_loader(ImageFiles(items, pre.to_uint8), config.batch_size, True, seed=7, epoch=1)
    batches = list(DeviceLoader(items, order(), view, CPU, pre.draft_size()))
    assert len(batches) == len(cpu) and [y.tolist() for _, y in batches] == [y.tolist() for _, y in cpu]
    assert all(x.shape[1:] == (3, 32, 32) and x.dtype == torch.uint8 for x, _ in batches)
    again = list(DeviceLoader(items, order(), augment_view(train_transform(pre, "light", 0.5), seed=7), CPU, None))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, again))  # the same seed, the same crops
    assert augment_view(train_transform(pre, "strong"), seed=7) is None  # its TrivialAugment has no device version here


@pytest.fixture(scope="module")
def lite0():
    try:
        return create_backbone("efficientnet_lite0").model
    except Exception as err:  # the bundled weights package is missing
        pytest.skip(f"bundled efficientnet_lite0 weights unavailable: {err}")


def _cosines(model, paths: list[Path], device: torch.device) -> torch.Tensor:
    """Per-image cosine between the device pipeline's features (run on ``device``) and the CPU path's, both in fp32
    (bf16 alone moves near-identical inputs' features by ~1e-3)."""
    pre = model.preprocess
    runtime = pick_runtime(device.type, "fp32")
    ref = extract_features(model, paths, decoder="cpu", runtime=runtime)
    with DeviceBatches(paths, [range(len(paths))], lambda images, _: eval_view(pre, images), device, 2, len(paths), pre.draft_size()) as batches:
        [(positions, x, bad)] = list(batches)
    assert positions == ref.ok and set(bad) == {paths.index(p) for p in ref.failed}
    feats = features_of_images(model, x, runtime)
    return torch.nn.functional.cosine_similarity(feats, ref.features)


@pytest.mark.slow
@needs_oxford
def test_device_geometry_features_match_the_cpu_path_on_oxford(lite0) -> None:
    # every 15th file: several breeds, a draft-decoded large JPEG (Abyssinian_51, 728x597) and odd files
    paths = sorted((OXFORD_MINI / "images").glob("*.jpg"))[::15][:40]
    cos = _cosines(lite0, paths, CPU)
    assert len(cos) >= 30 and cos.min() >= 0.999, cos.min()


@needs_cuda
@needs_oxford
def test_on_cuda_the_device_pipeline_matches_the_cpu_path(lite0) -> None:
    paths = sorted((OXFORD_MINI / "images").glob("*.jpg"))
    paths = paths if len(paths) <= 40 else paths[::15][:40]  # on a GPU machine, the carried sample is that subset
    cos = _cosines(lite0, paths, torch.device("cuda"))
    assert cos.min() >= 0.999, cos.min()


@needs_cuda
def test_on_cuda_extraction_decodes_on_the_gpu_and_reports_bad_files_as_the_cpu_path(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_backbone(TINY, weights=tiny_weights).model
    paths = _odd_files(tmp_path / "odd") * 20  # several batches
    used = []
    real = device_input._decode
    monkeypatch.setattr(device_input, "_decode", lambda datas, device: used.append(device.type) or real(datas, device))
    on_gpu = extract_features(model, paths, decoder="gpu", batch_size=16)
    on_cpu = extract_features(model, paths, decoder="cpu", batch_size=16)
    assert "cuda" in used and on_gpu.failed == on_cpu.failed and on_gpu.ok == on_cpu.ok
    assert torch.nn.functional.cosine_similarity(on_gpu.features, on_cpu.features).min() > 0.99
    assert {p.device.type for p in model.parameters()} == {"cpu"}  # the caller's model where it was


@needs_cuda
def test_on_cuda_training_batches_are_made_on_the_gpu(photo_folder: Path) -> None:
    from transferlab.data.augment import train_transform
    from transferlab.train.device_loader import DeviceLoader, augment_view

    items = [(p, i % 3) for i, p in enumerate(sorted(photo_folder.rglob("*.jpg")))]
    pre = Preprocess((32, 32))
    view = augment_view(train_transform(pre, "light"), seed=0)
    batches = [list(range(i, min(i + 8, len(items)))) for i in range(0, len(items), 8)]
    on_gpu = list(DeviceLoader(items, batches, view, torch.device("cuda"), None))
    on_cpu = list(DeviceLoader(items, batches, augment_view(train_transform(pre, "light"), seed=0), CPU, None))
    assert all(x.device.type == "cuda" and y.device.type == "cuda" for x, y in on_gpu)
    for (a, _), (b, _) in zip(on_gpu, on_cpu):  # the same crops and flips; nvJPEG and libjpeg round differently
        assert (a.cpu().int() - b.int()).abs().float().mean() < 2.0


def test_centre_boxes_are_the_preprocess_records() -> None:
    pre = Preprocess((224, 224), crop_pct=0.875)
    boxes = center_boxes(pre, [(375, 500), (500, 375)])
    assert boxes.tolist() == [list(pre.crop_box(500, 375)), list(pre.crop_box(375, 500))]
    assert math.isclose(float(boxes[0, 3] - boxes[0, 1]), 375 * 224 / 256, rel_tol=0.01)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_decoder_gpu_without_a_gpu_is_one_line_naming_the_fix(capsys, monkeypatch, tiny_run_dir: Path, photo_folder: Path, command: str) -> None:
    from ..test_cli import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: gpu decoding is allowed here")
    args = [tiny_run_dir, next(photo_folder.rglob("*.jpg"))] if command == "predict" else [tiny_run_dir, photo_folder]
    code, out, err = cli(capsys, monkeypatch, command, *args, "--decoder", "gpu")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--decoder cpu" in err, err
    code, _, err = cli(capsys, monkeypatch, command, *args, "--decoder", "cpu")
    assert code == 0, err


def test_only_whole_baseline_rgb_or_grey_jpegs_are_sent_to_the_device_decoder(tmp_path: Path) -> None:
    # nvJPEG may decode a cut-short file into a grey-filled picture where Pillow refuses it: such files never reach it
    headers = {p.name: device_input.device_header(p.read_bytes()) if p.exists() else None for p in _odd_files(tmp_path / "odd")}
    sent = {name for name, header in headers.items() if header is not None}
    assert sent == {"plain.jpg", "plain2.jpg", "grey.jpg", "rotated.jpg"}
    assert headers["rotated.jpg"] == (120, 90, 6) and headers["plain.jpg"] == (120, 90, 1)
