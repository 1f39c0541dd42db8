"""Ranking metrics at k, per customer, so the back-test can bootstrap them by customer.

Relevant items are what the customer bought in the horizon, including items the catalogue
did not know at the cutoff (nobody can recommend those; counting them keeps recall honest).
Recall = hits / relevant; NDCG with binary gains; AP@k = sum of precision at each hit /
min(relevant, k); hit rate = any hit. Repeat and new-to-customer recall use only the
relevant items the customer had / had not bought before.
"""

from __future__ import annotations

import numpy as np

KS = (5, 10, 20)
PER_CUSTOMER = ("recall", "ndcg", "map", "hit_rate", "recall_repeat", "recall_new")
CATALOGUE = ("coverage", "novelty", "popularity_bias")


def metric_names() -> list[str]:
    return [f"{m}_at_{k}" for k in KS for m in PER_CUSTOMER + CATALOGUE]


def per_customer(top: np.ndarray, relevant: list[set[int]], repeat: list[set[int]]) -> dict:
    """Per-customer metric arrays (NaN where undefined: no repeat or no new item bought) of
    ranked item codes ``top`` (customers x >= max(KS)) against ``relevant`` item codes."""
    n = top.shape[0]
    relevant_count = np.array([len(r) for r in relevant], np.float64)
    def member(sets: list[set[int]]) -> np.ndarray:
        return np.array([[item in found for item in row] for row, found in
                         zip(top, sets, strict=True)], bool).reshape(n, top.shape[1])

    hits, is_repeat = member(relevant), member(repeat)
    repeat_count = np.array([len(r) for r in repeat], np.float64)
    new_count = relevant_count - repeat_count
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in KS:
            h = hits[:, :k]
            n_hits = h.sum(axis=1)
            ideal = np.cumsum(discount[:k])[np.minimum(relevant_count, k).astype(int) - 1]
            precision_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
            out[f"recall_at_{k}"] = n_hits / relevant_count
            out[f"ndcg_at_{k}"] = (h * discount[:k]).sum(axis=1) / ideal
            out[f"map_at_{k}"] = (precision_at * h).sum(axis=1) / np.minimum(relevant_count, k)
            out[f"hit_rate_at_{k}"] = (n_hits > 0).astype(np.float64)
            repeat_hits = (h & is_repeat[:, :k]).sum(axis=1)
            out[f"recall_repeat_at_{k}"] = np.where(repeat_count > 0,
                                                    repeat_hits / repeat_count, np.nan)
            out[f"recall_new_at_{k}"] = np.where(new_count > 0,
                                                 (n_hits - repeat_hits) / new_count, np.nan)
    return out


def catalogue_metrics(top: np.ndarray, item_buyers: np.ndarray, n_customers: int) -> dict:
    """Coverage (share of the catalogue in anyone's top k), novelty (mean -log2 of the share
    of customers who bought a recommended item) and popularity bias (mean popularity
    percentile of recommended items, 1 = the bestseller)."""
    share = np.maximum(item_buyers, 1) / max(n_customers, 1)
    percentile = np.argsort(np.argsort(item_buyers, kind="stable"), kind="stable") / max(
        item_buyers.size - 1, 1)
    out = {}
    for k in KS:
        shown = top[:, :k]
        out[f"coverage_at_{k}"] = np.unique(shown).size / item_buyers.size if shown.size else 0.0
        out[f"novelty_at_{k}"] = float(np.mean(-np.log2(share[shown]))) if shown.size else 0.0
        out[f"popularity_bias_at_{k}"] = float(np.mean(percentile[shown])) if shown.size else 0.0
    return out


def paired_bootstrap(candidate: np.ndarray, baseline: np.ndarray, samples: int,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean per-customer gain of ``candidate`` over ``baseline`` and its percentile CI,
    customers resampled with replacement (the same customers for both: paired)."""
    diff = candidate - baseline
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return {"gain": float("nan"), "low": float("nan"), "high": float("nan")}
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, diff.size, diff.size)].mean() for _ in range(samples)])
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"gain": float(diff.mean()), "low": float(low), "high": float(high)}
