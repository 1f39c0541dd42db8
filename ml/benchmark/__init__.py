"""Benchmarks: which learner, which platform, on the platform's own out-of-time folds.

Every learner of a model's spec plus the benchmark's roster (``roster.yaml``: LightGBM,
CatBoost, scikit-learn's HistGradientBoosting, FLAML's time-boxed AutoML, a tuned
learner) is back-tested on the same rolling folds of the model's training set
(``harness.py``). Per learner: the primary metric and guardrails with bootstrap CIs,
top-decile lift and the retention campaign's profit at its capacity (``economics.py``),
fit time, predict time per 1M rows and peak memory; a ranking with the significance of
each gap; on synthetic data the oracle ceiling and a data-rich reference, the same
learner trained on a much larger history from the same generator (``reference.py``).
``report.py`` renders the HTML report and logs it to the MLflow experiment ``benchmark``.

May import: ``ml.modeling``, ``ml.lifecycle`` and below (``ml.sim`` for the reference
history). Never ``ml.decisions``, ``ml.ops`` or ``ml.cli``.
"""
