"""The honest back-test: rolling global time cutoffs, full-catalogue ranking.

At each cutoff (the newest ``folds`` snapshots with matured labels) every learner is fitted
on the histories before the cutoff and ranks every item known at it for every customer who
has a history and bought something in the horizon; the two-stage ranker learns from the
newest earlier snapshot whose horizon ended by the cutoff, so no outcome after the cutoff
is seen. Never per-user leave-one-out, never sampled negatives. Customers without a history
(cold start) are served popularity and not scored here.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np

from ml.recommend import data, learners
from ml.recommend.metrics import KS, catalogue_metrics, metric_names, paired_bootstrap, per_customer
from ml.warehouse import Warehouse, get_warehouse

PRIMARY = "recall_at_10"
ORACLE = "oracle"
CHAMPION = "champion"  # the champion's recipe, re-fitted on the same cutoffs


def past_snapshot(cutoff: date, labelled: list[date], horizon_days: int) -> date | None:
    """The newest labelled snapshot whose horizon ended by ``cutoff``."""
    earlier = [s for s in labelled if s + timedelta(days=horizon_days) <= cutoff]
    return earlier[-1] if earlier else None


def fit(kind: str, params: dict, snapshot: data.Snapshot, labelled: list[date],
        horizon_days: int, wh: Warehouse) -> learners.Recommender:
    """A learner fitted at ``snapshot`` (the ranker also on the past it may see)."""
    model = learners.build(kind, params)
    past = None
    if kind == "two_stage":
        when = past_snapshot(snapshot.as_of, labelled, horizon_days)
        if when is None:
            raise ValueError(f"the two-stage ranker needs a labelled snapshot at least "
                             f"{horizon_days} days before {snapshot.as_of}")
        past = (data.load_snapshot(when, wh), data.load_labels(when, wh))
    return model.fit(snapshot, past)


def _codes(products, index: dict[str, int]) -> set[int]:
    """Item codes of product ids; products unknown to the catalogue get new codes."""
    return {index.setdefault(p, len(index)) for p in products}


def run(learner_specs: dict[str, tuple[str, dict]], folds: int, horizon_days: int,
        bootstrap_samples: int, oracle_relation: str | None = None,
        warehouse: Warehouse | None = None,
        reference: dict[str, tuple[str, dict]] | None = None) -> dict:
    """Back-test every learner (and the ``reference`` recipes, which are compared with but
    never chosen); the card ``ml.lifecycle.gate`` and the report read."""
    wh = warehouse or get_warehouse()
    labelled = data.labelled_snapshots(wh)
    cutoffs = [c for c in labelled if c != labelled[0] or len(labelled) == 1][-folds:]
    if not cutoffs:
        raise data.RecommendationDataError(
            "No recommendation snapshot has matured labels yet: the history is shorter than "
            f"the {horizon_days}-day horizon past the first snapshot.")
    per_fold: dict[str, list[dict]] = {}
    values: dict[str, dict[str, list[np.ndarray]]] = {}
    seconds: dict[str, float] = {}
    for cutoff in cutoffs:
        snapshot = data.load_snapshot(cutoff, wh)
        labels = data.load_labels(cutoff, wh)
        rows = snapshot.rows(np.array(sorted(labels), dtype=object))
        customers = np.array(sorted(labels), dtype=object)[rows >= 0]
        rows = rows[rows >= 0]
        index = {item: i for i, item in enumerate(snapshot.items)}
        relevant = [_codes(labels[c], index) for c in customers]
        bought_before = [set(snapshot.orders[r].indices) for r in rows]
        repeat = [rel & before for rel, before in zip(relevant, bought_before, strict=True)]
        results = {}
        for name, (kind, params) in {**learner_specs, **(reference or {})}.items():
            started = time.perf_counter()
            model = fit(kind, params, snapshot, labelled, horizon_days, wh)
            top, _ = learners.top_k(model, rows, max(KS))
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            results[name] = (top, catalogue_metrics(top, snapshot.item_buyers,
                                                    snapshot.customers.size))
        if oracle_relation and _has_oracle(wh, oracle_relation, cutoff):
            top = _oracle_top(wh, oracle_relation, cutoff, customers, index)
            results[ORACLE] = (top, {})
        for name, (top, catalogue) in results.items():
            metrics = per_customer(top, relevant, repeat)
            for metric, array in metrics.items():
                values.setdefault(name, {}).setdefault(metric, []).append(array)
            per_fold.setdefault(name, []).append(
                {"cutoff": str(cutoff), "customers": int(len(customers)),
                 **{m: float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")
                    for m, a in metrics.items()}, **catalogue})
    return _card(learner_specs, per_fold, values, seconds, bootstrap_samples, cutoffs)


def _card(learner_specs, per_fold, values, seconds, bootstrap_samples, cutoffs) -> dict:
    summary = {name: {metric: {"mean": float(np.nanmean([f[metric] for f in folds])),
                               "std": float(np.nanstd([f[metric] for f in folds]))}
                      for metric in folds[0] if metric not in ("cutoff", "customers")}
               for name, folds in per_fold.items()}
    learners_only = [n for n in learner_specs if n in summary]
    candidate = max(learners_only, key=lambda n: summary[n][PRIMARY]["mean"])
    pooled = {name: np.concatenate(v[PRIMARY]) for name, v in values.items()}
    gains = {name: paired_bootstrap(pooled[candidate], pooled[name], bootstrap_samples)
             for name in [*learners_only, CHAMPION] if name != candidate and name in pooled}
    baselines = [n for n in learners_only if n != candidate]
    best_baseline = max(baselines, key=lambda n: summary[n][PRIMARY]["mean"]) if baselines else None
    oracle = None
    if ORACLE in summary and best_baseline:
        ceiling = summary[ORACLE][PRIMARY]["mean"]
        floor = summary[best_baseline][PRIMARY]["mean"]
        oracle = {"recall_at_10": ceiling, "best_baseline": best_baseline,
                  "gap_closed": (summary[candidate][PRIMARY]["mean"] - floor) / (ceiling - floor)
                  if ceiling > floor else None}
    return {"summary": summary, "gains": gains, "candidate": candidate, "champion": None,
            "metrics": metric_names(), "primary_metric": PRIMARY, "per_fold": per_fold,
            "cutoffs": [str(c) for c in cutoffs], "oracle": oracle,
            "fit_seconds": seconds,
            "selection": _selection(summary, learners_only, candidate, len(cutoffs))}


def _selection(summary, names, winner, n_cutoffs) -> dict:
    others = sorted((n for n in names if n != winner),
                    key=lambda n: -summary[n][PRIMARY]["mean"])
    runner_up = others[0] if others else None
    return {"rule": f"best {PRIMARY} over {n_cutoffs} global time cutoff(s)", "winner": winner,
            "runner_up": runner_up,
            "margin": summary[winner][PRIMARY]["mean"] - summary[runner_up][PRIMARY]["mean"]
            if runner_up else None}


def _has_oracle(wh: Warehouse, relation: str, cutoff: date) -> bool:
    schema, table = relation.split(".")
    return wh.table_exists(schema, table) and bool(wh.scalar(
        f"SELECT count(*) FROM {wh.relation(schema, table)} WHERE as_of_date = ?", [cutoff]))


def _oracle_top(wh, relation, cutoff, customers, index) -> np.ndarray:
    """Each customer's products ranked by the true purchase probability (top max(KS))."""
    schema, table = relation.split(".")
    rows = wh.query(f"SELECT customer_id, product_id, p_buy FROM {wh.relation(schema, table)} "
                    "WHERE as_of_date = ? ORDER BY customer_id, p_buy DESC", [cutoff],
                    stage="item oracle")
    ranked: dict[str, list[int]] = {}
    for customer, product in zip(rows.column("customer_id").to_pylist(),
                                 rows.column("product_id").to_pylist(), strict=True):
        ranked.setdefault(customer, []).append(index.setdefault(product, len(index)))
    depth = max(KS)
    top = np.full((len(customers), depth), -1, np.int64)
    for i, customer in enumerate(customers):
        items = ranked.get(customer, [])[:depth]
        top[i, :len(items)] = items
    return top
