"""Each targeted customer in the retention plan carries their top offers."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

STATE_VARS = ("WAREHOUSE_PATH", "MLFLOW_TRACKING_URI")


def test_targets_carry_their_top_offers_and_strangers_get_the_popularity_list(tmp_path,
                                                                               monkeypatch):
    for var in STATE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path))
    from ml.decisions.offers import targets_with_offers
    from ml.warehouse import get_warehouse

    wh = get_warehouse()
    as_of = date(2024, 6, 1)
    wh.append("ml", "campaign_targets", pa.table({
        "customer_id": ["a", "b", "stranger"], "as_of_date": [as_of] * 3, "rank": [1, 2, 3]}))
    rows = [("a", r, f"pa{r}", "model") for r in (1, 2, 3, 4)]
    rows += [("h", r, f"top{r}", "holdout") for r in (1, 2, 3, 4)]
    rows += [("b", r, f"pb{r}", "model") for r in (1, 2)]
    wh.append("ml", "recommendations", pa.table({
        "customer_id": [c for c, *_ in rows], "as_of_date": [as_of] * len(rows),
        "rank": pa.array([r for _, r, *_ in rows], pa.int32()),
        "product_id": [p for _, _, p, _ in rows], "score": [1.0] * len(rows),
        "model_version": ["1"] * len(rows), "source": [s for *_, s in rows]}))

    planned = targets_with_offers(offers=3).set_index("customer_id")
    assert planned.loc["a", "offers"] == ["pa1", "pa2", "pa3"]
    assert planned.loc["b", "offers"] == ["pb1", "pb2"]  # a short list stays short
    assert planned.loc["stranger", "offers"] == ["top1", "top2", "top3"]
    assert (planned["offers_as_of"] == as_of).all()
