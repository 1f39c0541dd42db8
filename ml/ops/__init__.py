"""Operations: running the platform.

In-process DAG runs (``orchestration.py``), the main job end to end (``pipeline.py``),
the platform's state (``status.py``), the local Airflow + MLflow servers and their REST
client (``servers.py``), and the BigQuery emulator harness for tests and benchmarks
(``emulator.py``).

May import anything in ``ml`` except ``ml.cli``.
"""
