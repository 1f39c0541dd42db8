"""Score the uplift champion: the estimated effect of a contact through each retention
channel, for every customer of the campaign's population at the scoring snapshot.

Writes ``ml.uplift_scores`` (as_of_date, customer_id, channel, uplift, model_version,
scored_at), one row per customer and channel, replacing that as-of in one transaction (a
rerun writes the same rows; a failure leaves the previous ones). The retention plan reads
it when the uplift model has a champion.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import registry
from ml.modeling.training_data import model_frame
from ml.settings import ML_SCHEMA
from ml.uplift.train import MODEL_NAME, get_uplift_spec
from ml.warehouse import get_warehouse, split_name

SCORES_TABLE = "uplift_scores"
CHANNELS_RELATION = ("seeds", "retention_channels")


class UpliftServingError(RuntimeError):
    """Nothing to score (no champion, no population); previous scores are untouched."""


def scoring_snapshot() -> date:
    wh = get_warehouse()
    latest = wh.scalar(f"SELECT max(as_of_date) FROM {wh.relation('marts', 'snapshot_calendar')} "
                       "WHERE is_scoring_snapshot", stage="scoring snapshot")
    if latest is None:
        raise UpliftServingError("marts.snapshot_calendar has no scoring snapshot: run features")
    return latest


def channels() -> list[str]:
    wh = get_warehouse()
    if not wh.table_exists(*CHANNELS_RELATION):
        raise UpliftServingError("seeds.retention_channels is missing: run the features DAG")
    rows = wh.query(f"SELECT channel FROM {wh.relation(*CHANNELS_RELATION)} ORDER BY channel",
                    stage="retention channels").to_pydict()["channel"]
    return [str(c) for c in rows]


def score_uplift(as_of: date | None = None) -> dict:
    """Score the champion into ``ml.uplift_scores``; returns a summary per channel."""
    import mlflow.sklearn

    spec = get_uplift_spec()
    champion = registry.version_by_alias(MODEL_NAME, registry.CHAMPION)
    if champion is None:
        raise UpliftServingError(f"{MODEL_NAME} has no champion yet: nothing to score")
    recipe = registry.run_json(champion.run_id, "recipe.json")
    model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{registry.CHAMPION}")
    wh = get_warehouse()
    as_of = as_of or scoring_snapshot()
    relation = wh.relation(*split_name(spec.scoring.relation))
    where = "as_of_date = ?" + (f" AND {wh.quote(spec.scoring.population_column)}"
                                if spec.scoring.population_column else "")
    population = wh.read_arrow(f"SELECT * FROM {relation} WHERE {where} ORDER BY customer_id",
                               [as_of], stage="uplift population").to_pandas()
    if population.empty:
        raise UpliftServingError(f"{spec.scoring.relation} has no population rows at {as_of}")
    channel_column = spec.uplift.channel_column
    numeric, categorical = recipe["numeric"], recipe["categorical"]
    parts = []
    for channel in channels():
        frame = model_frame(population.assign(**{channel_column: channel}), numeric, categorical)
        uplift = np.clip(np.asarray(model.predict(frame), dtype=np.float64), -1.0, 1.0)
        parts.append(pd.DataFrame({"customer_id": population["customer_id"].astype(str),
                                   "channel": channel, "uplift": uplift}))
    scores = pd.concat(parts, ignore_index=True)
    scores.insert(0, "as_of_date", as_of)
    scores["model_version"] = str(champion.version)
    scores["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
    wh.replace_rows(ML_SCHEMA, SCORES_TABLE, "SELECT * FROM {rows}", key={"as_of_date": as_of},
                    sources={"rows": pa.Table.from_pandas(scores, preserve_index=False)},
                    partition_by="as_of_date")
    per_channel = scores.groupby("channel")["uplift"].agg(["mean", "min", "max"])
    return {"model": MODEL_NAME, "version": str(champion.version), "as_of": str(as_of),
            "customers": int(population.shape[0]),
            "per_channel": {c: {k: float(v) for k, v in row.items()}
                            for c, row in per_channel.iterrows()}}


def read_uplift_scores(as_of: date) -> pd.DataFrame:
    """The champion's scores of ``as_of`` (empty when none were written for it)."""
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, SCORES_TABLE):
        return pd.DataFrame(columns=["customer_id", "channel", "uplift", "model_version"])
    return wh.read_arrow(
        f"SELECT customer_id, channel, uplift, model_version FROM "
        f"{wh.relation(ML_SCHEMA, SCORES_TABLE)} WHERE as_of_date = ?", [as_of],
        stage="uplift scores").to_pandas()
