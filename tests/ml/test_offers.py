"""Each targeted customer in the retention plan carries their top offers, in the plan's
export too."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

STATE_VARS = ("WAREHOUSE_PATH", "MLFLOW_TRACKING_URI")
AS_OF = date(2024, 6, 1)


@pytest.fixture
def plan(tmp_path, monkeypatch):
    """A plan of three customers in a fresh warehouse; no recommendations yet."""
    for var in STATE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path))
    from ml.warehouse import get_warehouse

    wh = get_warehouse()
    wh.append("ml", "campaign_targets", pa.table({
        "customer_id": ["a", "b", "stranger"], "as_of_date": [AS_OF] * 3, "rank": [1, 2, 3]}))
    return wh


def _serve(wh) -> None:
    rows = [("a", r, f"pa{r}", "model") for r in (1, 2, 3, 4)]
    rows += [("h", r, f"top{r}", "holdout") for r in (1, 2, 3, 4)]
    rows += [("b", r, f"pb{r}", "model") for r in (1, 2)]
    wh.append("ml", "recommendations", pa.table({
        "customer_id": [c for c, *_ in rows], "as_of_date": [AS_OF] * len(rows),
        "rank": pa.array([r for _, r, *_ in rows], pa.int32()),
        "product_id": [p for _, _, p, _ in rows], "score": [1.0] * len(rows),
        "model_version": ["1"] * len(rows), "source": [s for *_, s in rows]}))


def test_targets_carry_their_top_offers_and_strangers_get_the_popularity_list(plan):
    from ml.decisions.offers import targets_with_offers
    from ml.recommend.serving import ServingError

    with pytest.raises(ServingError, match="no recommendations are served yet"):
        targets_with_offers(offers=3)
    _serve(plan)
    planned = targets_with_offers(offers=3).set_index("customer_id")
    offers = ["offer_1", "offer_2", "offer_3"]
    assert planned.loc["a", offers].tolist() == ["pa1", "pa2", "pa3"]
    assert planned.loc["b", offers].tolist() == ["pb1", "pb2", None]  # a short list stays short
    assert planned.loc["stranger", offers].tolist() == ["top1", "top2", "top3"]
    assert (planned["offers_as_of"] == AS_OF).all()
    assert planned["rank"].tolist() == [1, 2, 3]  # the plan's own columns are kept


def test_export_targets_writes_the_offers_and_says_when_there_are_none(plan, tmp_path):
    from ml.cli import app

    runner, out = CliRunner(), tmp_path / "targets.csv"
    before = runner.invoke(app, ["export", "targets", "--out", str(out)])
    assert before.exit_code == 0, before.output
    assert "exported without offers" in before.output
    assert "offer_1" not in pd.read_csv(out).columns

    _serve(plan)
    after = runner.invoke(app, ["export", "targets", "--out", str(out), "--offers", "2"])
    assert after.exit_code == 0, after.output
    frame = pd.read_csv(out).set_index("customer_id")
    assert frame.loc["a", ["offer_1", "offer_2"]].tolist() == ["pa1", "pa2"]
    assert "offer_3" not in frame.columns

    plain = runner.invoke(app, ["export", "targets", "--out", str(out), "--offers", "0"])
    assert plain.exit_code == 0, plain.output
    assert "offer_1" not in pd.read_csv(out).columns
