"""Top offers for the retention plan: what to show each customer the campaign contacts.

The plan (``ml.campaign_targets``) says who to contact; ``ml.recommendations`` says what
they are likely to buy. ``targets_with_offers`` gives every targeted customer their first
``offers`` recommended items; a targeted customer without a served list (outside the
recommendation population) gets the popularity list the holdout is served.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from ml.decisions.campaign import read_targets
from ml.recommend.serving import HOLDOUT, ServingError, read_recommendations


def targets_with_offers(as_of: date | None = None, offers: int = 3) -> pd.DataFrame:
    """The campaign targets (newest plan, or ``as_of``) with an ``offers`` list column and
    the as-of of the lists they came from."""
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
    targets = targets.copy()
    targets["offers"] = [by_customer.get(c, popular) for c in targets["customer_id"]]
    targets["offers_as_of"] = lists["as_of_date"].iloc[0] if len(lists) else None
    return targets
