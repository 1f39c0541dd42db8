"""The recommender's parts on hand-made data: metrics by hand, EASE's closed form, no item
unknown at the cutoff recommended, and the bad inputs of issue 14."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pytest

from ml.modeling.specs import Recommend
from ml.recommend import learners
from ml.recommend.data import RecommendationDataError, from_tables
from ml.recommend.metrics import paired_bootstrap, per_customer
from ml.recommend.serving import (
    COLD_START,
    HOLDOUT,
    MODEL,
    ServingError,
    in_holdout,
    rank_customers,
)

AS_OF = date(2024, 6, 1)


def _snapshot(history: list[tuple[str, str, int]], items: list[str], categories=None,
              current=None):
    """A snapshot from (customer, product, orders) rows over the catalogue ``items``."""
    n = len(items)
    catalogue = pa.table({
        "product_id": items, "category": categories or ["c"] * n,
        "buyers": [sum(1 for _, p, _ in history if p == item) for item in items],
        "buyers_30d": [0] * n, "buyers_90d": [sum(1 for _, p, _ in history if p == item)
                                              for item in items],
        "is_current": current or [True] * n})
    table = pa.table({
        "customer_id": [c for c, _, _ in history], "product_id": [p for _, p, _ in history],
        "orders": [o for _, _, o in history], "orders_90d": [o for _, _, o in history],
        "last_ordered_at": pa.array([datetime(2024, 5, 20)] * len(history), pa.timestamp("us"))})
    return from_tables(AS_OF, catalogue, table)


def test_metrics_match_a_hand_computation():
    # customer 0 bought {1, 7}: ranked 1 at position 1, 7 nowhere; 1 was a repeat purchase
    top = np.array([[1, 2, 3, 4, 5, 6, 8, 9, 10, 11] + list(range(12, 22))])
    out = per_customer(top, relevant=[{1, 7}], repeat=[{1}])
    assert out["recall_at_5"][0] == 0.5
    assert out["hit_rate_at_5"][0] == 1.0
    assert out["ndcg_at_5"][0] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert out["map_at_5"][0] == pytest.approx(1 / 2)  # precision 1 at the one hit / min(2, 5)
    assert out["recall_repeat_at_5"][0] == 1.0 and out["recall_new_at_5"][0] == 0.0
    # a hit at rank 3 of 1 relevant item
    out = per_customer(np.array([[9, 8, 7] + list(range(20, 37))]), [{7}], [set()])
    assert out["ndcg_at_5"][0] == pytest.approx(1 / np.log2(4))
    assert out["map_at_5"][0] == pytest.approx(1 / 3)
    assert np.isnan(out["recall_repeat_at_5"][0])


def test_paired_bootstrap_ci_brackets_the_gain_and_excludes_zero_for_a_clear_gain():
    rng = np.random.default_rng(0)
    baseline = rng.random(2000)
    ci = paired_bootstrap(baseline + 0.1 + rng.normal(0, 0.05, 2000), baseline, 300)
    assert ci["low"] < ci["gain"] < ci["high"] and ci["low"] > 0.09


def test_ease_matches_its_closed_form():
    history = [("a", "x", 1), ("a", "y", 1), ("b", "y", 1), ("b", "z", 1), ("c", "x", 1),
               ("c", "z", 1), ("c", "y", 1)]
    snapshot = _snapshot(history, ["x", "y", "z"])
    model = learners.EASE(l2=0.5).fit(snapshot)
    x = snapshot.orders.toarray() > 0
    p = np.linalg.inv(x.T.astype(float) @ x + 0.5 * np.eye(3))
    b = np.eye(3) - p / np.diag(p)
    assert np.allclose(model.weights, b, atol=1e-5)
    assert np.allclose(np.diag(model.weights), 0)
    assert np.allclose(model.score(np.arange(3)), x @ b, atol=1e-5)


def test_items_unknown_at_the_cutoff_are_never_recommended():
    # "new" appears in a (stale) history row but not in the catalogue at the cutoff
    history = [("a", "x", 2), ("a", "new", 5), ("b", "y", 1), ("c", "x", 1), ("c", "y", 1)]
    snapshot = _snapshot(history, ["x", "y", "z"])
    assert "new" not in set(snapshot.items)
    for kind in ("popularity", "repeat", "item_knn", "ease"):
        model = learners.build(kind, {}).fit(snapshot)
        ranked = rank_customers(model, np.array(["a", "b", "c"], dtype=object), 3)
        assert set(ranked.items.ravel()) <= {"x", "y", "z"}, kind


def test_a_null_product_id_in_the_catalogue_is_a_clear_error():
    with pytest.raises(RecommendationDataError, match="null product id"):
        _snapshot([("a", "x", 1)], ["x", None])


def test_one_item_catalogue_and_k_beyond_it_give_short_lists_not_a_crash():
    snapshot = _snapshot([("a", "x", 1), ("b", "x", 2)], ["x"])
    model = learners.RepeatHistory().fit(snapshot)
    ranked = rank_customers(model, np.array(["a", "stranger"], dtype=object), 10)
    assert ranked.items.shape == (2, 1) and (ranked.items == "x").all()
    assert list(ranked.source) == [MODEL, COLD_START]
    with pytest.raises(ServingError, match="at least 1"):
        rank_customers(model, np.array(["a"], dtype=object), 0)


def test_business_rules_drop_recent_buys_unless_repeatable_and_retired_items():
    history = [("a", "x", 1), ("a", "staple", 3), ("b", "y", 1), ("b", "old", 1)]
    snapshot = _snapshot(history, ["old", "staple", "x", "y"],
                         categories=["c", "Grocery", "c", "c"], current=[False, True, True, True])
    model = learners.RepeatHistory().fit(snapshot)
    rules = Recommend(k=3, exclude_bought_within_days=30, repeatable_categories=["Grocery"],
                      holdout_share=0.0)
    ranked = rank_customers(model, np.array(["a", "b"], dtype=object), 3, rules,
                            np.array(["c", "Grocery", "c", "c"], dtype=object))
    first = [item for item in ranked.items[0] if item is not None]
    assert first[0] == "staple" and "x" not in first  # x bought 12 days ago, not repeatable
    assert "old" not in set(ranked.items.ravel())  # not in the current catalogue


def test_holdout_is_seeded_stable_and_about_its_share():
    ids = np.array([f"C{i:07d}" for i in range(20_000)], dtype=object)
    first, again = in_holdout(ids, 0.1, seed=3), in_holdout(ids, 0.1, seed=3)
    assert np.array_equal(first, again) and 0.09 < first.mean() < 0.11
    assert not np.array_equal(first, in_holdout(ids, 0.1, seed=4))
    snapshot = _snapshot([(c, "x", 1) for c in ids[:50]], ["x", "y"])
    ranked = rank_customers(learners.RepeatHistory().fit(snapshot), ids[:50], 2,
                            Recommend(k=2, holdout_share=0.5, exclude_bought_within_days=0))
    assert set(ranked.source) == {MODEL, HOLDOUT}
