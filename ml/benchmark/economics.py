"""What a ranking is worth to the retention campaign: realised profit at its capacity.

The campaign (``ml.decisions.campaign``) contacts the customers it expects to keep most
value from, through the channels of the dbt seed ``retention_channels``. The benchmark
scores every learner the same way on each out-of-time fold: contact the top decile by
churn score, at most the capacity of the channel that has one, through that channel
(the seed's capped channel is the one the plan fills first: the best save rate); a
contacted customer who churned is saved with the channel's save rate and is worth the
trailing 12-month margin (``revenue_365d`` times ``MARGIN_RATE``, as the campaign values
customers). Profit = saved value - contact cost, on the labels that actually happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.warehouse import get_warehouse

CHANNELS_RELATION = ("seeds", "retention_channels")
CAMPAIGN_MODEL = "churn"  # the model whose positive label the retention campaign acts on
MARGIN_RATE = 0.3  # the campaign's default share of revenue that is margin
VALUE_COLUMN = "revenue_365d"
TARGET_SHARE = 0.1  # the top decile


@dataclass(frozen=True)
class Campaign:
    channel: str
    cost_per_contact: float
    save_rate: float
    capacity: int | None

    def contacts(self, population: int) -> int:
        top = max(1, math.ceil(TARGET_SHARE * population))
        return top if self.capacity is None else min(top, self.capacity)


def campaign_economics() -> Campaign | str:
    """The channel the benchmark's campaign uses, read from the seed; or why there is none."""
    schema, table = CHANNELS_RELATION
    wh = get_warehouse()
    if not wh.table_exists(schema, table):
        return f"no {schema}.{table} (run the features DAG: dbt seeds it)"
    rows = wh.query(f"SELECT * FROM {wh.relation(schema, table)}",
                    stage="benchmark channel economics").to_pandas()
    if rows.empty:
        return f"{schema}.{table} is empty"
    capped = rows[rows["capacity"].notna()] if "capacity" in rows else rows.iloc[:0]
    pick = (capped if len(capped) else rows).sort_values("save_rate", ascending=False).iloc[0]
    capacity = pick.get("capacity")
    return Campaign(channel=str(pick["channel"]), cost_per_contact=float(pick["cost_per_contact"]),
                    save_rate=float(pick["save_rate"]),
                    capacity=None if pd.isna(capacity) else int(capacity))


def profit_at_capacity(campaign: Campaign, folds: np.ndarray, y: np.ndarray,
                       value: np.ndarray, score: np.ndarray) -> dict:
    """Realised profit of contacting each fold's top customers by ``score``, summed over
    the folds, with the contacts and the churners reached."""
    profit, contacts, churners = 0.0, 0, 0
    for fold in np.unique(folds):
        rows = np.flatnonzero(folds == fold)
        k = campaign.contacts(rows.size)
        top = rows[np.argsort(-score[rows], kind="stable")[:k]]
        profit += float(np.sum(y[top] * value[top]) * campaign.save_rate
                        - k * campaign.cost_per_contact)
        contacts += k
        churners += int(y[top].sum())
    return {"profit": profit, "contacts": contacts, "churners_reached": churners}
