"""Writes examples/transfer_learning.ipynb from the cells below (no outputs); `python scripts/make_notebook.py --execute` also runs it and saves its outputs."""
from pathlib import Path

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# Transfer learning, step by step, with transferlab

The path of the course: a pretrained network and what it sees, cats vs dogs on its frozen features, then
fine-tuning, an "ideal" cat with a total-variation penalty, and a dog the network takes for a cat.
It runs on the Oxford-IIIT Pet mini set shipped beside this repository (`../shared/data/oxford-iiit-pet-mini`,
or set `OXFORD`), in a few minutes on 2 CPU cores, offline: the backbone is the bundled EfficientNet-Lite0."""),
    code("""import io
import os
import warnings
from pathlib import Path

import transferlab as tl
from IPython.display import Image, display
from PIL import Image as PILImage

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar, not used here


def show(image, width=720):
    \"\"\"Display a PIL image as a compact JPEG, at most ``width`` pixels wide.\"\"\"
    image = image.convert("RGB")
    image.thumbnail((width, width))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    display(Image(data=buffer.getvalue()))


OXFORD = Path(os.environ.get("OXFORD", "../../shared/data/oxford-iiit-pet-mini")).resolve()
cat, dog = OXFORD / "images" / "Bengal_101.jpg", OXFORD / "images" / "american_bulldog_100.jpg"
cat.exists(), dog.exists()"""),
    md("""## 1. A pretrained network, and what it sees

`open_model` takes a backbone name: the network with its ImageNet head. It already knows cats and dogs,
just not as *our* two classes."""),
    code("""imagenet = tl.open_model("efficientnet_lite0")
for row in imagenet.predict([cat, dog], k=3):
    print(Path(row["path"]).name, [(t["label"], round(t["prob"], 3)) for t in row["top"]])"""),
    md("""Feature maps: the channels of an intermediate stage that respond most to the cat."""),
    code("""maps = tl.feature_maps(imagenet.model, imagenet.load_image(cat), stage=3)
show(tl.inspect.feature_grid(maps, top=12))"""),
    md("""## 2. Cats vs dogs on frozen features (the probe)

The dataset folder is read as it is; `label="species"` makes two classes. The backbone's features are
computed once and cached, and a linear head is fitted on them. The test split is held out from every
choice; the printed figure is on it."""),
    code("""data = tl.load_dataset(OXFORD, label="species")
probe = tl.train(data, strategy="probe")
m = probe.record.metrics
print(f"{m['split']} accuracy {m['accuracy']:.3f} on {m['n']} held-out images; L2 chosen on {probe.record.phases[0].choose_from}")"""),
    md("""## 3. Fine-tuning

The probe's head first, then the backbone unfrozen (here one short epoch, the last two stages, to keep the
notebook quick). Validation images carved from train judge the epochs against the probe itself (epoch 0),
and the run keeps fine-tuning only on clear evidence; `decision` says what happened."""),
    code("""tuned = tl.train(data, strategy="finetune", finetune_config=tl.FinetuneConfig(epochs=1, unfreeze="2"))
print(tuned.record.decision)
print(f"{tuned.record.metrics['split']} accuracy {tuned.record.metrics['accuracy']:.3f} (kept: {tuned.record.kept})")"""),
    md("""## 4. An ideal cat

Optimise an image from noise until the ImageNet network is sure it shows a tabby cat, with a
total-variation penalty so that it stays smooth. A few dozen steps here; `steps=256` gives the pictures
in the README."""),
    code("""ideal = tl.dream(imagenet.model, "tabby cat", tl.DreamConfig(steps=32))
print(f"{ideal.class_name}: probability {ideal.probability:.3f}, after saving as PNG {ideal.probability_png:.3f}")
show(ideal.to_pil(), width=256)"""),
    md("""## 5. A dog the network takes for a cat

A targeted PGD attack (L∞ ε = 4/255) on the bulldog photo at its own size. The saved PNG is judged by
reading it back exactly as `predict` does."""),
    code("""report = tl.attack(imagenet, dog, "tabby cat", out="dog_as_cat.png")
r = report.record
print(f"{r['original']['class']} -> {r['adversarial']['class']} ({r['adversarial']['prob']:.2f}); success {r['success']}, PSNR {r['psnr_db']:.1f} dB")
print("predict on the file:", imagenet.predict(["dog_as_cat.png"], k=1)[0]["top"][0])
show(PILImage.open(report.files["figure"]), width=900)"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "examples" / "transfer_learning.ipynb"))

if __name__ == "__main__":
    import sys

    if "--execute" in sys.argv:
        from nbclient import NotebookClient

        path = Path(__file__).resolve().parents[1] / "examples" / "transfer_learning.ipynb"
        notebook = nbf.read(path, as_version=4)
        NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        nbf.write(notebook, path)
