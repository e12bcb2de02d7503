"""The Ray path's pieces that need no Ray: the missing-extra message and the row builder."""

from __future__ import annotations

import sys

import pytest

import transferlab as tl


def test_without_ray_the_error_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.cluster.session import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    with pytest.raises(tl.ConfigError, match=r"pip install 'ray\[data\]'") as err:
        require_ray()
    assert "\n" not in str(err.value)


def test_rows_carry_the_answer_top_k_reasons_and_the_in_distribution_score_only_when_the_run_has_one() -> None:
    pytest.importorskip("pyarrow", reason="pyarrow comes with ray[data]")
    from transferlab.cluster.predict import prediction_rows
    from transferlab.run.prediction import Prediction, Ranked

    top = (Ranked("dog", 1, 0.5), Ranked("fox", 2, 0.3), Ranked("cat", 0, 0.2))
    rejected = Prediction(path="a.jpg", label=None, index=1, closest="dog", prob=0.5, in_distribution=False, score=-1.5, top=top)
    rows = prediction_rows(["a.jpg", "b.jpg"], [None, "empty file (0 bytes)"], [rejected], 2, with_score=False).to_pylist()
    assert rows == [
        {"path": "a.jpg", "label": None, "label_1": "dog", "prob_1": 0.5, "label_2": "fox", "prob_2": 0.3, "error": None},
        {"path": "b.jpg", "label": None, "label_1": None, "prob_1": None, "label_2": None, "prob_2": None, "error": "empty file (0 bytes)"},
    ]
    rows = prediction_rows(["a.jpg", "b.jpg"], [None, "empty file (0 bytes)"], [rejected], 1, with_score=True).to_pylist()
    assert [r["in_distribution"] for r in rows] == [-1.5, None]


def test_an_address_where_no_cluster_listens_is_a_one_line_error_not_minutes_of_retries() -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from transferlab.cluster.session import connected

    with pytest.raises(tl.ConfigError, match=r"cannot reach a Ray cluster at '127.0.0.1:1'.*ray start --head"):
        with connected("127.0.0.1:1"):
            pass
