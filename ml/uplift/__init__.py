"""Uplift: whom a retention contact actually changes, learned from past randomised campaigns.

- ``metrics``: Qini coefficient, AUUC, uplift at the budget's capacity, and a paired
  bootstrap CI of one ranking's gain over another within campaigns;
- ``learners``: T- and X-learners over the platform's scikit-learn pipelines, and the
  baselines (churn probability as the ranking, random).

May import: ``ml.lifecycle``, ``ml.modeling``, ``ml.registry``, ``ml.warehouse`` and below.
"""
