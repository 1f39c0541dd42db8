"""The customer ML platform: one sub-package per capability.

Imports point down this list, never up (``tests/test_layout.py`` fails on an upward or
circular import):

- ``ml.cli``: the ``ml`` command line;
- ``ml.ops``: in-process DAG runs, the main job, status, local servers, emulator harness;
- ``ml.decisions``: batch scoring, the retention allocation, the campaign plan;
- ``ml.recommend``, ``ml.experiments``, ``ml.uplift``, ``ml.mmm``, ``ml.benchmark``:
  personalisation, experiments, uplift models, the media-mix model, learner benchmarks
  (as they are added);
- ``ml.lifecycle``: promotion gate, ledger, promote, rollback;
- ``ml.modeling``: specs, training data, learners, back-test, metrics, training run, report;
- ``ml.sim``: the synthetic world and its ground truth;
- ``ml.warehouse``, ``ml.dbt``, ``ml.marts``, ``ml.registry``: the warehouse interface
  (and raw-data import), dbt invocation, what the dbt build reads and makes, the MLflow
  registry;
- ``ml.settings``, ``ml.schema``, ``ml.assets``, ``ml.faults``: settings, the raw-data
  contract, Asset names, named kill points for the fault tests.
"""
