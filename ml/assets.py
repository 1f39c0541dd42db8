"""Names of the Airflow Assets that connect the DAGs (plain strings: cheap to import)."""

FEATURES_ASSET = "cmp://warehouse/marts/customer_features"


def champion_asset(model_name: str) -> str:
    """Updated when ``model_name`` gets a new champion; scoring is scheduled on it."""
    return f"cmp://mlflow/models/{model_name}/champion"

SCORES_ASSET = "cmp://warehouse/ml/scores"
TARGETS_ASSET = "cmp://warehouse/ml/campaign_targets"
READOUTS_ASSET = "cmp://warehouse/ml/experiment_readouts"
