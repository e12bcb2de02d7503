"""Writes examples/transfer_learning.ipynb from the cells below (no outputs); `python scripts/make_notebook.py --execute` also runs it
and saves its outputs, which tests/test_notebook.py compares with a fresh run (the numbers each cell prints)."""
import os
import sys
from pathlib import Path

import nbformat as nbf

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "transfer_learning.ipynb"

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# Transfer learning, step by step, with transferlab

The path of the course, on three breeds of the Oxford-IIIT Pet mini set (Abyssinian and Bengal cats, the American
bulldog): what a pretrained network sees; a head trained on its frozen features; fine-tuning the network itself, and
whether that was worth it; the image the network finds most "Bengal", with and without a smoothness penalty; a
bulldog photo changed invisibly until the trained model calls it a Bengal; and the evaluation, confusion matrix and
Grad-CAM of what it learnt.

It runs offline in a few minutes on 2 CPU cores: the backbone is the bundled EfficientNet-Lite0 and the data set is
the one shipped beside this repository (`../shared/data/oxford-iiit-pet-mini`, or set `OXFORD`). Every computation
runs in fp32 (`precision="fp32"`), so the printed numbers do not depend on whether the CPU has bf16."""),
    code("""import os
import warnings
from pathlib import Path

import transferlab as tl
from IPython.display import HTML

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar; progress bars are not needed here

OXFORD = Path(os.environ.get("OXFORD", "../../shared/data/oxford-iiit-pet-mini"))
cat, dog = OXFORD / "images" / "Bengal_101.jpg", OXFORD / "images" / "american_bulldog_175.jpg"
print(cat.name, cat.exists(), dog.name, dog.exists())"""),
    md("""## 1. A pretrained network, and what it sees

`open_model` takes a backbone name and gives the network with its ImageNet head: it already knows a thousand
classes, "tabby cat" and "Egyptian cat" among them, but not *our* three."""),
    code("""imagenet = tl.open_model("efficientnet_lite0")
for photo in (cat, dog):
    p = imagenet.predict(photo, k=3, precision="fp32")
    print(photo.name, "->", ", ".join(f"{t.label} {t.prob:.3f}" for t in p.top))"""),
    md("""Each stage of the network outputs feature maps: one channel per detector, active where its pattern is. The
twelve channels of the middle stage that respond most to the cat (bright: strong response). Early stages find
edges and colours, later ones fur, eyes, ears."""),
    code("""maps = tl.feature_maps(imagenet.model, imagenet.load_image(cat), stage=3)
print(f"layer {maps.layer}: {maps.activation.shape[1]} channels of {maps.activation.shape[2]}x{maps.activation.shape[3]}")
tl.inspect.feature_grid(maps, top=12, tile=96)"""),
    md("""## 2. Frozen features + a new head (the probe)

The data set is read as it is, labelled by breed, with the train/test split it comes with. The network's features
are computed once (and cached on disk), and a linear softmax head is fitted on them; its L2 strength is chosen on
images held out of train. The test split is held out from every choice: the accuracy printed is on it. `probe`
shows itself: how it was made, its score, and how sure it is allowed to be."""),
    code("""ds = tl.load_dataset(OXFORD)
print(ds.classes, {split: sum(s.split == split for s in ds.samples) for split in ("train", "val", "test")})
probe = tl.train(ds, tl.TrainConfig(precision="fp32"))
m = probe.record.metrics
print(f"probe: {m['split']} accuracy {m['accuracy']:.3f} on {m['n']} held-out images; L2 chosen on {probe.record.phases[0].choose_from}")
probe"""),
    md("""## 3. Fine-tuning

Now the backbone itself learns: the probe's head first, then the network's last three stages unfrozen, lower
stages at smaller learning rates (one epoch here, to stay quick; by default all stages, up to 6 epochs).
Fine-tuning can also make a model worse, so validation images carved out of train judge it against the probe (the
probe is "epoch 0"), and the run keeps the fine-tuned network only when it wins clearly, in most bootstrap
resamples of validation. `record.decision` says what it tried and why it kept what it kept; the test split
still decides nothing."""),
    code("""tuned = tl.train(ds, tl.TrainConfig(strategy="finetune", precision="fp32", finetune=tl.FinetuneConfig(epochs=1, unfreeze="3")))
for name, run in (("probe", probe), ("fine-tuned", tuned)):
    print(f"{name:>10}: test accuracy {run.record.metrics['accuracy']:.3f}")
print("kept:", tuned.record.kept)
print("why:", tuned.record.decision)
tuned"""),
    md("""## 4. An ideal Bengal

Start from noise and change the image until the trained model is sure it shows a Bengal. Without a penalty the
network is satisfied by high-frequency noise; subtracting the image's total variation (how much neighbouring pixels
differ) from the objective keeps it smooth enough to show fur and shapes. The same seed, with and without the
penalty; the TV per pixel and the model's confidence on the saved 8-bit PNG are printed under each. (64 steps at
128 pixels to stay quick; the defaults, 256 steps at the model's input size, give finer pictures.)"""),
    code("""dreams = {tv: tuned.dream("Bengal", tl.DreamConfig(steps=64, size=128, tv=tv)) for tv in (0.0, 300.0)}
for tv, d in dreams.items():
    print(f"tv weight {tv:g}: total variation per pixel {d.tv_per_pixel:.3f}, p({d.class_name}) {d.probability_png:.3f}")
HTML('<div style="display:flex;gap:1em">' + "".join(f"<div>{d._repr_html_()}</div>" for d in dreams.values()) + "</div>")"""),
    md("""## 5. A dog the network takes for a cat

A targeted PGD attack against the trained run: at most 4/255 of change per pixel (L∞), on the bulldog photo at its own
size, pushing the model towards "Bengal". Success is judged the way `predict` would judge the saved PNG, and to be
sure, the file is then read back through `predict` itself. (`predict` also says whether a photo looks like the
training photos at all: `label` is None, "none of these", when it does not.)"""),
    code("""adversarial = tl.attack(tuned, dog, "Bengal", config=tl.AttackConfig(precision="fp32"), out="dog_as_cat.png")
before, after = tuned.predict(dog, precision="fp32"), tuned.predict("dog_as_cat.png", precision="fp32")
print(f"the photo: {before.label} {before.prob:.3f}; the saved file: {after.closest} {after.prob:.3f}")
if not after.in_distribution:
    print("...though the run's 'none of these' check flags the file: its features look like none of the training photos")
adversarial"""),
    md("""## 6. Evaluation and Grad-CAM

The run scored on the test split: accuracy, per-class precision and recall, the pairs it confuses, and the
confusion matrix (rows: true breed, columns: predicted)."""),
    code("""evaluation = tuned.evaluate(ds, precision="fp32")
print(f"{evaluation.metrics['split']}: accuracy {evaluation.accuracy:.3f} on {evaluation.metrics['n']} images")
evaluation"""),
    md("""Grad-CAM: where in the photo the evidence for the predicted class lies (red: most)."""),
    code("""cam = tuned.explain(cat)
print(f"{cam.class_name} {cam.probability:.3f}, peak at {cam.peak()}")
cam"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def execute(notebook: nbf.NotebookNode, directory: Path, timeout: int = 900) -> nbf.NotebookNode:
    """Run ``notebook`` in ``directory`` with progress bars off (their output is not reproducible); returns it."""
    from nbclient import NotebookClient

    os.environ["TQDM_DISABLE"] = "1"  # the kernel inherits this environment
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(directory)}}).execute()
    return notebook


if __name__ == "__main__":
    if "--execute" in sys.argv:
        execute(nb, NOTEBOOK.parent)
    nbf.write(nb, str(NOTEBOOK))
