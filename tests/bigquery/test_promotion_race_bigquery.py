"""Racing promotions with the ledger and the lock row on BigQuery (bqemulator): the engine
promoters on several machines share. Same checks as tests/ml/test_promotion_race.py."""

from __future__ import annotations

from ml.lifecycle.gate import PromotionError
from ml.lifecycle.promotion import promote
from tests.ml.test_promotion_race import champion, ledger_rows, race, register_versions


def test_racing_promotions_on_bigquery_leave_one_champion_and_a_true_ledger(on_bigquery):
    model, versions = register_versions(3)
    manual, gated = versions[0], versions[1:]
    promote(model, manual, actor="alice", mode="manual", reason="first champion")
    outcomes = race([lambda v=v: promote(
        model, v, actor="gate:auto", mode="auto", reason="beats the champion",
        verdict={"champion_version": manual}) for v in gated])
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, PromotionError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    winner = won[0]["to_version"]
    loser = next(v for v in gated if v != winner)
    assert champion(model) == winner
    assert ledger_rows(model) == [("promoted", None, manual), ("promoted", manual, winner),
                                  ("conflict", winner, loser)]
