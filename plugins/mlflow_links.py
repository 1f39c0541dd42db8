"""Airflow UI integration: an "MLflow" entry in the navigation bar (the model registry) and an
"MLflow run" button on every training DAG's ``train`` task, opening the run it logged.

Cheap to import: only the Airflow base classes at module level. The link is computed by the
API server when the task page asks for it (global extra links are not precomputed by the
worker), from the ``train`` task's XCom return value (``run_id``).
"""

from __future__ import annotations

import json
import os

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"


def mlflow_ui_url() -> str:
    return os.environ.get("MLFLOW_UI_URL", DEFAULT_MLFLOW_UI_URL).rstrip("/")


def is_training_task(dag_id: str | None, task_id: str) -> bool:
    return bool(dag_id) and dag_id.startswith("train_") and task_id == "train"


def run_url(run_id: str) -> str:
    return f"{mlflow_ui_url()}/#/runs/{run_id}"


def _return_value(ti_key) -> dict | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key="return_value", run_id=ti_key.run_id, dag_ids=ti_key.dag_id,
                               task_ids=ti_key.task_id, map_indexes=ti_key.map_index)
            .with_only_columns(XComModel.value)
        ).first()
    if row is None:
        return None
    value = row.value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


class MLflowRunLink(BaseOperatorLink):
    """The MLflow run a training DAG's ``train`` task logged (empty for every other task)."""

    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        if not is_training_task(ti_key.dag_id, ti_key.task_id):
            return ""
        trained = _return_value(ti_key)
        return run_url(trained["run_id"]) if trained and trained.get("run_id") else ""


class CustomerMLPlatformPlugin(AirflowPlugin):
    name = "customer_ml_platform"
    external_views = [
        {
            # Under "Browse". No url_route: MLflow is another origin that refuses to be framed,
            # so the entry opens the registry in a new tab. (Airflow 3.3 renders top-level
            # external entries as a <button href> that does not navigate.)
            "name": "MLflow model registry",
            "href": f"{mlflow_ui_url()}/#/models",
            "destination": "nav",
            "category": "browse",
        }
    ]
    global_operator_extra_links = [MLflowRunLink()]
