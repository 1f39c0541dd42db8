"""Batch serving: the champion's top-k for every customer into ``ml.recommendations``.

Shards rank their customers into Parquet files; one replace of the ``as_of_date`` slice
publishes them all at once (a killed run leaves the previous lists), and a rerun with the
same champion writes the same rows. Business rules come from the spec's ``recommend``
block: only items in the current catalogue, nothing bought within
``exclude_bought_within_days`` unless its category is repeatable, and a seeded random
``holdout_share`` of customers gets the popularity list (the control a campaign measures
against). Customers with no purchase history get the popularity list too. A catalogue
smaller than k gives shorter lists (never padding, never a crash).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml import registry
from ml.modeling.specs import ModelSpec, Recommend
from ml.recommend.learners import Recommender, popularity_order
from ml.settings import ML_SCHEMA, get_settings
from ml.warehouse import get_warehouse

RECOMMENDATIONS_TABLE = "recommendations"
SHARD_CUSTOMERS = 50_000
MODEL, HOLDOUT, COLD_START = "model", "holdout", "cold_start"


class ServingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ranked:
    items: np.ndarray  # (customers, k) product ids, None past the end of a short list
    scores: np.ndarray  # (customers, k), NaN past the end
    source: np.ndarray  # (customers,) model / holdout / cold_start


def in_holdout(customer_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A stable, seeded draw per customer id (same id, same seed: same answer)."""
    if share <= 0:
        return np.zeros(customer_ids.size, bool)
    draws = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{c}".encode(), digest_size=8)
                                     .digest(), "big") for c in customer_ids], np.float64)
    return draws / 2.0**64 < share


def rank_customers(model: Recommender, customer_ids: np.ndarray, k: int,
                   rules: Recommend | None = None, categories: np.ndarray | None = None) -> Ranked:
    """Top ``k`` eligible items per customer id, best first."""
    if k < 1:
        raise ServingError(f"k must be at least 1, got {k}")
    snapshot = model.snapshot
    rules = rules or Recommend(k=k, exclude_bought_within_days=0, holdout_share=0.0)
    eligible = snapshot.item_is_current.copy()
    if not eligible.any():
        eligible[:] = True  # nothing sold recently: the whole known catalogue, not nothing
    width = min(k, int(eligible.sum()))
    rows = snapshot.rows(customer_ids)
    holdout = in_holdout(customer_ids, rules.holdout_share, rules.holdout_seed)
    source = np.where(holdout, HOLDOUT, np.where(rows < 0, COLD_START, MODEL)).astype(object)
    popular = np.where(eligible, popularity_order(snapshot), -np.inf)
    popular_top = np.argsort(-popular, kind="stable")[:width]
    top = np.tile(popular_top, (customer_ids.size, 1))
    scores = np.tile(popular[popular_top].astype(np.float64), (customer_ids.size, 1))
    personal = np.flatnonzero(source == MODEL)
    repeatable = np.isin(categories, rules.repeatable_categories) if categories is not None \
        else np.zeros(snapshot.n_items, bool)
    for first in range(0, personal.size, 2048):
        block = personal[first:first + 2048]
        score = np.array(model.score(rows[block]), np.float64, copy=True)
        score[:, ~eligible] = -np.inf
        if rules.exclude_bought_within_days:
            recent = snapshot.days_since_last[rows[block]].tocoo()
            blocked = (recent.data <= rules.exclude_bought_within_days) & ~repeatable[recent.col]
            score[recent.row[blocked], recent.col[blocked]] = -np.inf
        best = np.argpartition(-score, width - 1, axis=1)[:, :width] if width < score.shape[1] \
            else np.tile(np.arange(score.shape[1]), (block.size, 1))
        best_scores = np.take_along_axis(score, best, 1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        top[block] = np.take_along_axis(best, order, 1)
        scores[block] = np.take_along_axis(best_scores, order, 1)
    items = snapshot.items[top].astype(object)
    finite = np.isfinite(scores)
    items[~finite] = None
    return Ranked(items=items, scores=np.where(finite, scores, np.nan), source=source)


def champion_model(spec: ModelSpec):
    """(version, RecommenderModel) of the champion, pinned by version."""
    import mlflow.pyfunc

    registry.configure()
    champion = registry.version_by_alias(spec.name, registry.CHAMPION)
    if champion is None:
        raise ServingError(f"{spec.name} has no champion yet: train and promote it first "
                           "(`ml train recommendations` or the recommend DAG)")
    loaded = mlflow.pyfunc.load_model(f"models:/{spec.name}/{champion.version}")
    return str(champion.version), loaded.unwrap_python_model()


def population(snapshot) -> np.ndarray:
    """Every customer known at the snapshot: those with a purchase history and, when the
    feature marts are built, every customer in them (the cold start)."""
    wh = get_warehouse()
    known = set(snapshot.customers)
    if wh.table_exists("marts", "customer_features"):
        features = wh.relation("marts", "customer_features")
        rows = wh.query(f"SELECT DISTINCT customer_id FROM {features} WHERE as_of_date = ?",
                        [snapshot.as_of], stage="recommendation population")
        known.update(rows.column("customer_id").to_pylist())
    return np.array(sorted(known), dtype=object)


def serve(spec: ModelSpec, k: int | None = None, shards: int | None = None) -> dict:
    """Write the champion's top-k for every customer; returns what was written."""
    version, wrapped = champion_model(spec)
    model = wrapped.recommender
    snapshot = model.snapshot
    k = k or spec.recommend.k
    customers = population(snapshot)
    categories = _category_names(snapshot)
    staged = get_settings().local_dir / "recommendations" / snapshot.as_of.isoformat()
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    n_shards = shards or max(1, -(-customers.size // SHARD_CUSTOMERS))
    files = []
    for shard, ids in enumerate(np.array_split(customers, n_shards)):
        ranked = rank_customers(model, ids, k, spec.recommend, categories)
        files.append(_write_shard(staged / f"shard-{shard:04d}.parquet", ids, ranked,
                                  snapshot.as_of, version))
    rows = get_warehouse().replace_rows(
        ML_SCHEMA, RECOMMENDATIONS_TABLE, "SELECT * FROM {shards}",
        key={"as_of_date": snapshot.as_of}, sources={"shards": files},
        partition_by="as_of_date", cluster_by=["customer_id"])
    shutil.rmtree(staged, ignore_errors=True)
    return {"model": spec.name, "version": version, "as_of": str(snapshot.as_of),
            "customers": int(customers.size), "rows": rows, "shards": n_shards, "k": k}


def _category_names(snapshot) -> np.ndarray:
    wh = get_warehouse()
    rows = wh.query(f"SELECT product_id, category FROM "
                    f"{wh.relation('marts', 'recommendation_catalogue')} WHERE as_of_date = ?",
                    [snapshot.as_of], stage="catalogue categories")
    by_item = dict(zip(rows.column("product_id").to_pylist(),
                       rows.column("category").to_pylist(), strict=True))
    return np.array([by_item.get(i) for i in snapshot.items], dtype=object)


def _write_shard(path: Path, ids: np.ndarray, ranked: Ranked, as_of: date, version: str) -> Path:
    k = ranked.items.shape[1]
    keep = ~np.isnan(ranked.scores.ravel())
    table = pa.table({
        "customer_id": pa.array(np.repeat(ids, k)[keep].tolist(), pa.string()),
        "as_of_date": pa.array([as_of] * int(keep.sum()), pa.date32()),
        "rank": pa.array(np.tile(np.arange(1, k + 1), ids.size)[keep], pa.int32()),
        "product_id": pa.array(ranked.items.ravel()[keep].tolist(), pa.string()),
        "score": pa.array(ranked.scores.ravel()[keep], pa.float64()),
        "model_version": pa.array([version] * int(keep.sum()), pa.string()),
        "source": pa.array(np.repeat(ranked.source, k)[keep].tolist(), pa.string()),
    })
    pq.write_table(table, path)
    return path


def read_recommendations(k: int | None = None, customer_id: str | None = None):
    """The newest as-of's lists (top ``k``), optionally of one customer, as pandas."""
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, RECOMMENDATIONS_TABLE):
        raise ServingError("no recommendations yet: run `ml recommendations serve` (or the "
                           "recommend DAG) first")
    relation = wh.relation(ML_SCHEMA, RECOMMENDATIONS_TABLE)
    where, params = [f"as_of_date = (SELECT max(as_of_date) FROM {relation})"], []
    if k:
        where.append("rank <= ?")
        params.append(k)
    if customer_id:
        where.append("customer_id = ?")
        params.append(customer_id)
    return wh.read_arrow(f"SELECT * FROM {relation} WHERE {' AND '.join(where)} "
                         "ORDER BY customer_id, rank", params, stage="recommendations").to_pandas()


def explain(spec: ModelSpec, customer_id: str) -> dict:
    """A customer's purchase history next to their served list, and per item why, where the
    learner can say: the base learners that pooled it (two-stage), the history items that
    point to it (item-kNN, EASE) or the customer's own purchases (repeat)."""
    version, wrapped = champion_model(spec)
    model = wrapped.recommender
    snapshot = model.snapshot
    row = int(snapshot.rows(np.array([customer_id], dtype=object))[0])
    history = []
    if row >= 0:
        orders, days = snapshot.orders[row], snapshot.days_since_last[row]
        for item, count, since in sorted(zip(orders.indices, orders.data, days.data, strict=True),
                                         key=lambda t: t[2]):
            history.append({"product_id": snapshot.items[item], "orders": int(count),
                            "days_since_last": int(since)})
    served = read_recommendations(customer_id=customer_id)
    index = {item: i for i, item in enumerate(snapshot.items)}
    reasons = {p: _why(model, row, index[p]) if row >= 0 and p in index else "popularity list"
               for p in served.get("product_id", [])}
    return {"customer_id": customer_id, "model_version": version, "as_of": str(snapshot.as_of),
            "source": served["source"].iloc[0] if len(served) else None,
            "history": history, "recommendations": served.to_dict("records"), "why": reasons}


def _why(model, row: int, item: int) -> str:
    snapshot = model.snapshot
    own = snapshot.orders[row, item]
    if hasattr(model, "base_models"):  # two-stage: where each base learner ranked it
        ranks = []
        for name, base in model.base_models.items():
            score = np.asarray(base.score(np.array([row])))[0]
            ranks.append(f"{name} #{int((score > score[item]).sum()) + 1}")
        return "ranker over " + ", ".join(ranks)
    weights = getattr(model, "similarity", getattr(model, "weights", None))
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        bought = snapshot.orders[row].indices
        if bought.size:
            strongest = bought[np.argsort(-weights[bought, item])[:2]]
            return "bought " + ", ".join(str(snapshot.items[i]) for i in strongest)
    if own:
        return f"bought {int(own)} time(s) before"
    return "popular with similar customers" if hasattr(model, "user_factors") else "popular"
