"""The Airflow UI plugin without servers: it loads, its navigation entry matches the API's
schema, and the "MLflow run" link targets only the training DAGs' train task."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from ml.settings import REPO_ROOT

PLUGIN_FILE = REPO_ROOT / "plugins" / "mlflow_links.py"


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5999/")
    spec = importlib.util.spec_from_file_location("mlflow_links_under_test", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_navigation_entry_is_a_valid_external_view(plugin):
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    (view,) = plugin.CustomerMLPlatformPlugin.external_views
    parsed = ExternalViewResponse.model_validate(view)
    assert parsed.href == "http://127.0.0.1:5999/#/models"
    assert parsed.destination == "nav" and parsed.url_route is None


def test_run_link_only_for_training_tasks(plugin):
    from airflow.models.taskinstancekey import TaskInstanceKey

    link = plugin.CustomerMLPlatformPlugin.global_operator_extra_links[0]
    assert link.name == "MLflow run"
    assert plugin.is_training_task("train_churn", "train")
    assert not plugin.is_training_task("train_churn", "gate")
    assert not plugin.is_training_task("features", "train")
    other = TaskInstanceKey(dag_id="score", task_id="plan", run_id="r1")
    assert link.get_link(None, ti_key=other) == ""
    assert plugin.run_url("abc123") == "http://127.0.0.1:5999/#/runs/abc123"


@pytest.mark.slow
def test_airflow_loads_the_plugin_from_the_plugins_folder():
    code = (
        "from airflow import plugins_manager as pm;"
        "plugins, errors = pm._get_plugins();"
        "names = [p.name for p in plugins];"
        "assert 'customer_ml_platform' in names, names;"
        "assert not errors, errors"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
