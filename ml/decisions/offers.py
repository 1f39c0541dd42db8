"""Top offers for the retention plan: what to show each customer the campaign contacts.

The plan (``ml.campaign_targets``) says who to contact; ``ml.recommendations`` says what
they are likely to buy. ``targets_with_offers`` gives every customer of the plan (treated
and control alike, so the arms stay comparable) their first ``offers`` recommended items as
columns ``offer_1`` .. ``offer_N`` (a shorter list leaves the rest null), and the as-of of
the lists they came from; a customer without a served list (outside the recommendation
population) gets the popularity list the holdout is served. ``ml export targets`` writes
them with the plan (``--offers 0`` leaves them out).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from ml.decisions.campaign import read_targets
from ml.recommend.serving import HOLDOUT, ServingError, read_recommendations


def offer_columns(offers: int) -> list[str]:
    return [f"offer_{rank}" for rank in range(1, offers + 1)]


def targets_with_offers(as_of: date | None = None, offers: int = 3) -> pd.DataFrame:
    """The campaign targets (newest plan, or ``as_of``) with ``offer_1`` .. ``offer_N``
    and ``offers_as_of``. Raises ServingError when the plan has targets but no lists are
    served yet."""
    if offers < 1:
        raise ValueError(f"offers must be at least 1, got {offers}")
    targets = read_targets(as_of)
    if targets.empty:
        return targets
    try:
        lists = read_recommendations(k=offers)
    except ServingError:
        raise ServingError("the campaign has targets but no recommendations are served yet: "
                           "run `ml recommendations serve` first") from None
    by_customer = lists.groupby("customer_id")["product_id"].agg(list)
    holdout = lists[lists["source"] == HOLDOUT]
    popular = (holdout[holdout["customer_id"] == holdout["customer_id"].iloc[0]]["product_id"]
               .tolist() if len(holdout) else [])
    items = [by_customer.get(c, popular) for c in targets["customer_id"]]
    wide = pd.DataFrame([row + [None] * (offers - len(row)) for row in items],
                        columns=offer_columns(offers), index=targets.index, dtype=object)
    targets = pd.concat([targets, wide], axis=1)
    targets["offers_as_of"] = lists["as_of_date"].iloc[0] if len(lists) else None
    return targets
