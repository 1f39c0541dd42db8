"""Benchmark: batch recommendations end to end, and training the champion's recipe.

    python bench/recommend.py [--customers 1000000] [--items 5000] [--interactions 10000000]
                              [--learner two_stage] [--k 10] [--skip-serving] [--skip-training]

A synthetic snapshot (Zipf item popularity, customers in taste clusters) stands in for the
marts, so the figures time the recommender, not dbt. Serving = rank every customer (business
rules and holdout included), write Parquet shards, publish them into ml.recommendations in
one replace. Targets: >= 25,000 customers/s for 1M customers x 5,000 items, peak memory
< 3 GiB; training the champion on 10M interactions < 3 minutes.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_state, peak_rss_mib, timed  # noqa: E402

AS_OF = date(2024, 6, 1)


def synthetic_snapshot(customers: int, items: int, interactions: int, seed: int, as_of: date):
    from ml.recommend.data import from_tables

    rng = np.random.default_rng(seed)
    clusters = 50
    cluster_of = rng.integers(0, clusters, customers)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    affinity = rng.gamma(0.3, 1.0, (clusters, items)) * popularity
    cdf = np.cumsum(affinity, axis=1)
    cdf /= cdf[:, -1:]
    user = rng.integers(0, customers, interactions)
    item = np.minimum(_draw(rng, cdf, cluster_of[user]), items - 1)
    pairs = np.unique(user.astype(np.int64) * items + item)
    user, item = np.divmod(pairs, items)
    ids = np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 8)).astype(object)
    products = np.char.add("P", np.char.zfill(np.arange(items).astype(str), 6)).astype(object)
    buyers = np.bincount(item, minlength=items)
    catalogue = pa.table({"product_id": products.tolist(),
                          "category": [f"c{i % 8}" for i in range(items)],
                          "buyers": buyers, "buyers_30d": buyers // 4, "buyers_90d": buyers // 2,
                          "is_current": np.ones(items, bool)})
    last = np.datetime64(as_of) - rng.integers(1, 365, pairs.size).astype("timedelta64[D]")
    history = pa.table({"customer_id": ids[user].tolist(), "product_id": products[item].tolist(),
                        "orders": rng.integers(1, 4, pairs.size), "orders_90d": np.ones(pairs.size),
                        "last_ordered_at": pa.array(last.astype("datetime64[us]"))})
    return from_tables(as_of, catalogue, history), ids, products, cdf, cluster_of


def _draw(rng, cdf, clusters):
    """One item per row from its cluster's distribution (sorted by cluster: one pass each)."""
    out = np.empty(clusters.size, np.int64)
    for c in np.unique(clusters):
        rows = np.flatnonzero(clusters == c)
        out[rows] = np.searchsorted(cdf[c], rng.random(rows.size))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--learner", default="two_stage")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    isolated_state("bench-recommend-")
    from ml.modeling.specs import Recommend
    from ml.recommend import learners
    from ml.recommend.serving import RECOMMENDATIONS_TABLE, _write_shard, rank_customers
    from ml.settings import ML_SCHEMA, get_settings
    from ml.warehouse import get_warehouse

    results: dict[str, float] = {}
    with timed("synthetic snapshots", results):
        snapshot, ids, products, cdf, cluster_of = synthetic_snapshot(
            args.customers, args.items, args.interactions, 1, AS_OF)
        past, *_ = synthetic_snapshot(args.customers, args.items, args.interactions, 2,
                                      date(2024, 5, 1))
        rng = np.random.default_rng(3)
        buyers = rng.choice(args.customers, args.customers // 10, replace=False)
        labels = {ids[u]: {products[i] for i in _draw(rng, cdf, cluster_of[np.repeat(u, 2)])}
                  for u in buyers}
    print(f"interactions: {snapshot.orders.nnz:,} (distinct customer-item pairs)")
    if not args.skip_training:
        with timed(f"train {args.learner}", results):
            model = learners.build(args.learner, {}).fit(snapshot, (past, labels))
    else:
        model = learners.build("repeat", {}).fit(snapshot)
    if not args.skip_serving:
        rules = Recommend(k=args.k, exclude_bought_within_days=30, holdout_share=0.05)
        staged = get_settings().local_dir / "bench-recommendations"
        staged.mkdir(parents=True, exist_ok=True)
        files = []
        with timed(f"serve top-{args.k} ({args.customers:,} customers)", results):
            for shard, part in enumerate(np.array_split(ids, max(1, ids.size // 50_000))):
                ranked = rank_customers(model, part, args.k, rules)
                files.append(_write_shard(staged / f"shard-{shard:04d}.parquet", part, ranked,
                                          AS_OF, "bench"))
            rows = get_warehouse().replace_rows(
                ML_SCHEMA, RECOMMENDATIONS_TABLE, "SELECT * FROM {shards}",
                key={"as_of_date": AS_OF}, sources={"shards": files})
        seconds = results[f"serve top-{args.k} ({args.customers:,} customers)"]
        print(f"rows written: {rows:,}; {args.customers / seconds:,.0f} customers/s end to end")
    print(f"peak memory: {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
