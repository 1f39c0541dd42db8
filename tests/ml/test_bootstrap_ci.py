"""The bootstrap CI of one metric (the benchmark's per-learner CIs): the point value is the
metric itself, pooled or as a mean over folds, and the interval brackets it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.modeling.metrics import bootstrap_ci, bootstrap_gain_ci


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(5)
    folds = np.repeat([0, 1, 2], [300, 400, 500])
    y = (rng.random(folds.size) < 0.3).astype(float)
    p = np.clip(0.3 + 0.25 * (y - 0.3) + rng.normal(0, 0.2, folds.size) + 0.1 * folds, 0, 1)
    return y, p, folds


def test_pooled_value_is_the_metric_on_all_rows(scored):
    y, p, folds = scored
    ci = bootstrap_ci(y, p, "roc_auc", n_boot=200, groups=folds)
    assert ci["value"] == pytest.approx(roc_auc_score(y, p))
    assert ci["low"] < ci["value"] < ci["high"] and ci["n_boot"] == 200
    assert bootstrap_ci(y, p, "roc_auc", n_boot=200, groups=folds) == ci  # seeded


def test_mean_over_groups_is_the_back_tests_mean_over_folds(scored):
    y, p, folds = scored
    ci = bootstrap_ci(y, p, "roc_auc", n_boot=200, groups=folds, mean_over_groups=True)
    per_fold = [roc_auc_score(y[folds == f], p[folds == f]) for f in range(3)]
    assert ci["value"] == pytest.approx(np.mean(per_fold))
    assert ci["low"] < ci["value"] < ci["high"]
    # a fold-level shift in the scores lowers the pooled AUC, not the mean over folds
    assert ci["value"] > bootstrap_ci(y, p, "roc_auc", n_boot=50, groups=folds)["value"]
    gain = bootstrap_gain_ci(y, p, np.full_like(p, 0.5), "roc_auc", n_boot=200, groups=folds,
                             mean_over_groups=True)
    assert gain["gain"] == pytest.approx(np.mean(per_fold) - 0.5)
    with pytest.raises(ValueError, match="needs groups"):
        bootstrap_ci(y, p, "roc_auc", mean_over_groups=True)
