import numpy as np
import pytest
import torch

from transferlab.train import ProbeConfig, fit_probe, stratified_holdout


def _blobs(n: int, d: int, c: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * spread
    y = rng.integers(0, c, n)
    x = np.maximum(centers[y] + rng.normal(size=(n, d)), 0) * 3 + 2  # ReLU-like features, off-centre scale
    return x.astype(np.float32), y


def test_matches_scikit_learn_logistic_regression_at_the_chosen_strength() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(600, 64, 5, 0.25, seed=0)
    fit = fit_probe(x[:400], y[:400], 5)
    scaler = StandardScaler().fit(x[:400])
    ref = LogisticRegression(C=1 / (fit.l2 * 400), max_iter=2000, tol=1e-8).fit(scaler.transform(x[:400]), y[:400])
    ours = (torch.from_numpy(x[400:]) @ fit.weight.T + fit.bias).argmax(1).numpy()
    theirs = ref.predict(scaler.transform(x[400:]))
    assert (ours == theirs).mean() >= 0.97


def test_regularisation_is_chosen_on_validation_data_and_generalises() -> None:
    # Few noisy samples in many dimensions: too little L2 overfits, so the choice matters.
    x, y = _blobs(900, 128, 4, 0.15, seed=1)
    fit = fit_probe(x[:600], y[:600], 4, x[600:700], y[600:700])
    assert [s["l2"] for s in fit.val_scores] == list(ProbeConfig().l2_grid[:len(fit.val_scores)])  # strongest first
    assert fit.l2 == max(fit.val_scores, key=lambda s: (s["accuracy"], -s["log_loss"]))["l2"]

    def test_acc(f) -> float:
        return float(((torch.from_numpy(x[700:]) @ f.weight.T + f.bias).argmax(1).numpy() == y[700:]).mean())

    per_l2 = {l2: test_acc(fit_probe(x[:600], y[:600], 4, x[600:700], y[600:700], ProbeConfig(l2_grid=(l2,)))) for l2 in ProbeConfig().l2_grid}
    assert test_acc(fit) >= max(per_l2.values()) - 0.02
    assert test_acc(fit) >= per_l2[min(per_l2)] + 0.03  # beats the weakest penalty


def test_without_refit_the_validation_images_never_shape_the_head() -> None:
    # Fine-tuning judges its epochs on these images: a head refitted on them would score them unfairly.
    x, y = _blobs(300, 16, 3, 0.3, seed=2)
    xv, yv = _blobs(60, 16, 3, 0.3, seed=3)
    a = fit_probe(x, y, 3, xv, yv, refit=False)
    only_train = fit_probe(x, y, 3, xv, yv, ProbeConfig(l2_grid=(a.l2,)), refit=False)
    torch.testing.assert_close(a.weight, only_train.weight, rtol=1e-4, atol=1e-5)
    refitted = fit_probe(x, y, 3, xv, yv, ProbeConfig(l2_grid=(a.l2,)))
    assert not torch.allclose(refitted.weight, a.weight, atol=1e-3)


def test_same_seed_same_head() -> None:
    x, y = _blobs(300, 32, 3, 0.3, seed=2)
    a, b = fit_probe(x, y, 3, seed=7), fit_probe(x, y, 3, seed=7)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


@pytest.mark.parametrize("frac", [0.1, 0.2, 0.5])
def test_holdout_is_stratified_and_keeps_every_class_in_train(frac: float) -> None:
    y = np.array([0] * 50 + [1] * 10 + [2] * 2)
    tr, va = stratified_holdout(y, frac, seed=0)
    assert sorted(np.concatenate([tr, va])) == list(range(len(y)))
    for c in (0, 1, 2):
        assert (y[tr] == c).sum() >= 1
    assert abs((y[va] == 0).sum() - round(50 * frac)) <= 1


def test_k_fold_choice_of_l2_is_available_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 16)) + y[:, None] * 0.8
    a, b = fit_probe(x, y, 3, config=ProbeConfig(folds=5), seed=1), fit_probe(x, y, 3, config=ProbeConfig(folds=5), seed=1)
    assert a.chosen_on == "5-fold" and torch.equal(a.weight, b.weight)
    assert all("accuracy_sd" in s for s in a.val_scores)
    assert fit_probe(x, y, 3).chosen_on == "holdout"  # the default


def test_float32_search_finds_the_float64_optimum_and_the_same_strength() -> None:
    # The L2 path runs in float32 for speed; the head returned must still be the float64 optimum at the strength
    # a full float64 search would choose (scikit-learn's solver, run to a tight tolerance, is the reference).
    from sklearn.linear_model import LogisticRegression
    x, y = _blobs(700, 48, 5, 0.2, seed=4)
    tr, va, te = slice(0, 400), slice(400, 550), slice(550, 700)
    fit = fit_probe(x[tr], y[tr], 5, x[va], y[va], refit=False)
    mean, std = x[tr].astype(np.float64).mean(0), x[tr].astype(np.float64).std(0, ddof=1)  # as fit_probe standardises without refit

    class scaler:
        transform = staticmethod(lambda a: (a - mean) / std)

    refs = {l2: LogisticRegression(C=1 / (l2 * 400), max_iter=5000, tol=1e-10).fit(scaler.transform(x[tr]), y[tr]) for l2 in ProbeConfig().l2_grid}

    def score(m) -> tuple[float, float]:
        p = m.predict_proba(scaler.transform(x[va]))
        return float((p.argmax(1) == y[va]).mean()), -float(np.log(p[np.arange(len(p)), y[va]]).mean())

    assert fit.l2 == max(refs, key=lambda l2: score(refs[l2]))
    ours = torch.softmax(torch.from_numpy(x[te]) @ fit.weight.T + fit.bias, 1).numpy()
    np.testing.assert_allclose(ours, refs[fit.l2].predict_proba(scaler.transform(x[te])), atol=1e-4)


def test_the_path_stops_after_patience_worse_strengths_and_chooses_what_the_whole_grid_chooses() -> None:
    # Weak penalties are the slow fits: where enough images judge, the path stops once `patience` strengths in a
    # row judge worse than the best, and the strength it keeps is the one the whole grid would have kept.
    x, y = _blobs(900, 128, 4, 0.15, seed=1)
    whole = fit_probe(x[:600], y[:600], 4, x[600:700], y[600:700], ProbeConfig(patience=0))
    stopped = fit_probe(x[:600], y[:600], 4, x[600:700], y[600:700], ProbeConfig(fast_from=100))
    assert len(whole.val_scores) == len(ProbeConfig().l2_grid)
    best = [s["l2"] for s in whole.val_scores].index(whole.l2)
    assert best + 2 < len(whole.val_scores)  # the data leaves weaker strengths to skip
    assert len(stopped.val_scores) == best + 1 + ProbeConfig().patience
    assert stopped.l2 == whole.l2
    torch.testing.assert_close(stopped.weight, whole.weight, rtol=1e-3, atol=1e-4)
    # 100 judging images are fewer than the default's `fast_from`: a small, noisy judge sees the whole grid
    assert len(fit_probe(x[:600], y[:600], 4, x[600:700], y[600:700]).val_scores) == len(ProbeConfig().l2_grid)
