"""Personalisation: item recommendations trained from the warehouse, back-tested out of time.

- ``data``: the recommendation marts of one snapshot as sparse customer x item matrices;
- ``learners``: windowed popularity, repeat history, item-kNN, EASE, implicit ALS and the
  two-stage LightGBM ranker over their pooled candidates;
- ``metrics``: ranking metrics at k (recall, NDCG, MAP, hit rate), catalogue coverage,
  novelty, popularity bias, each split into repeat and new-to-customer items;
- ``backtest``: rolling global time cutoffs with full-catalogue ranking, per-customer paired
  bootstrap CIs of the gain over each baseline, the oracle and the share of the gap closed.

May import: ``ml.lifecycle``, ``ml.modeling``, ``ml.registry``, ``ml.warehouse`` and below.
"""
