"""MLflow: experiments, runs, the model registry and its aliases.

Aliases: ``challenger`` = newest registered version, ``champion`` = serving version.
MLflow has no compare-and-set for aliases, so callers serialise promotions (see
``ml.lifecycle.promotion``) and every alias write is read back.
"""

from __future__ import annotations

import json
import os
from functools import cache

from ml.settings import get_settings

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure():
    """Point MLflow at the configured store (embedded SQLite by default)."""
    import mlflow

    settings = get_settings()
    uri = os.environ.get("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    if uri.startswith("sqlite:///"):
        settings.local_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow


@cache
def _client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def client():
    mlflow = configure()
    return _client_for(mlflow.get_tracking_uri())


def experiment_id(model_name: str) -> str:
    """One experiment per model. With the embedded store, artifacts go to MLFLOW_ARTIFACTS_DIR;
    with a tracking server, the server decides (proxied artifacts)."""
    c = client()
    existing = c.get_experiment_by_name(model_name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if not c.tracking_uri.startswith(("http://", "https://", "databricks")):
        location = (get_settings().mlflow_artifacts_dir / model_name).as_uri()
    return c.create_experiment(model_name, artifact_location=location,
                               tags={"platform": "customer-ml"})


def version_by_alias(model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def set_alias(model_name: str, alias: str, version: str) -> None:
    c = client()
    c.set_registered_model_alias(model_name, alias, str(version))
    read_back = c.get_model_version_by_alias(model_name, alias)
    if str(read_back.version) != str(version):
        raise RuntimeError(f"alias {model_name}@{alias} reads back version {read_back.version}, "
                           f"expected {version}: another promotion raced this one")


def run_json(run_id: str, artifact: str) -> dict | None:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact}")
    except Exception:  # noqa: BLE001 - a run without the artifact simply has none
        return None


def run_data(run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    """A run's logged metrics and tags."""
    data = client().get_run(run_id).data
    return dict(data.metrics), dict(data.tags)


def champion_recipe(model_name: str) -> dict | None:
    """The champion's learner, params and feature list, as recorded by its training run."""
    champion = version_by_alias(model_name, CHAMPION)
    if champion is None:
        return None
    recipe = run_json(champion.run_id, "recipe.json")
    if recipe is not None:
        recipe["version"] = str(champion.version)
    return recipe


def tag_version(model_name: str, version: str, tags: dict[str, object]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(model_name, str(version), key,
                                value if isinstance(value, str) else json.dumps(value))


def describe_version(model_name: str, version: str, markdown: str) -> None:
    client().update_model_version(model_name, str(version), description=markdown)


def registered_models() -> list[str]:
    return sorted(m.name for m in client().search_registered_models())
