"""Modeling: what a model is and how it is judged out of time.

Model specs (``specs.py``, ``model_specs/*.yaml``), training sets read from the marts
(``training_data.py``), learners as whole scikit-learn pipelines (``learners.py``,
``bgnbd.py``), the rolling-origin folds (``folds.py``) and back-test (``backtest.py``),
hyper-parameter search nested inside each fold (``tuning.py``), metrics and bootstrap CIs
(``metrics.py``), the training run (``train.py``) and its MLflow report (``report.py``).

May import: ``ml.settings``, ``ml.schema``, ``ml.warehouse``, ``ml.marts``, ``ml.registry``.
Never ``ml.lifecycle``, ``ml.decisions``, ``ml.ops`` or ``ml.cli``.
"""
