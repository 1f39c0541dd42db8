"""Acquisition: the media-mix model of new customers on paid-media spend, and the budget plan.

- ``spec``: the spec file ``media_mix.yaml`` (outcome, frequency, priors, sampler, gate, plan);
- ``data``: the mart ``media_mix_daily`` as one row per period with a spend column per
  channel, the controls and the outcome; refuses data it cannot model (missing days,
  constant spend, too short a history) naming channel and dates;
- ``calibration``: lift-test readouts (``marts.media_lift_tests``) checked against the media
  data (unknown channel, period outside the data: table, column and rows named) and
  converted to PyMC-Marketing's lift-test rows per model period;
- ``model``: PyMC-Marketing's MMM (geometric adstock, logistic saturation, seasonality,
  controls), its diagnostics (R-hat, ESS, divergences, posterior predictive coverage), the
  chronological holdout (MAPE, CRPS), ROI and marginal ROI per channel with credible
  intervals, and the posterior response curves the plan optimises;
- ``train``: the training job: fit, gate, MLflow run with model card and HTML report,
  registered version, ledger and promotion through ``ml.lifecycle``;
- ``plan``: the budget plan across channels over the champion's posterior (SciPy SLSQP
  within per-channel bounds and the total), written to ``ml.media_plans``.

May import: ``ml.lifecycle``, ``ml.modeling`` (report helpers), ``ml.registry``,
``ml.warehouse``, ``ml.settings``, ``ml.schema``. Never ``ml.sim``: the model reads the
warehouse, not the simulator's truth (``bench/mmm.py`` compares the two).
"""
