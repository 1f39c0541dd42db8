"""Experiments: every retention campaign is a randomised experiment.

- ``assignment.py``: the control group by design: a deterministic hash of (campaign,
  customer) ranks customers within each score decile, and the control share comes from a
  power calculation for a stated minimum detectable effect;
- ``readout.py``: treated vs control on retention and revenue from
  ``marts.campaign_outcomes`` once a campaign's horizon has matured: differences with 95%
  intervals, CUPED with the pre-period as covariate, a sample-ratio-mismatch check, per
  channel and per score decile; rows in ``ml.experiment_readouts`` and an HTML report in
  MLflow; the measured save rates the next plan uses.

May import: ``ml.settings``, ``ml.schema``, ``ml.warehouse``, ``ml.registry``, ``ml.marts``.
Imported by ``ml.decisions`` (the plan), ``ml.ops`` and ``ml.cli``.
"""
