"""The repair finishes only a move it can prove was half done: an alias moved outside
promote/rollback is reported by ``champion_check`` and left for a person, never recorded."""

from __future__ import annotations

import uuid

import numpy as np
from sklearn.linear_model import LogisticRegression

from ml import registry
from ml.lifecycle.ledger import read_ledger
from ml.lifecycle.promotion import champion_check, promote


def _registered(count: int) -> tuple[str, list[str]]:
    mlflow = registry.configure()
    model = f"repair_{uuid.uuid4().hex[:8]}"
    features = np.random.default_rng(0).normal(size=(40, 3))
    fitted = LogisticRegression().fit(features, features[:, 0] > 0)
    with mlflow.start_run(experiment_id=registry.experiment_id(model)):
        logged = mlflow.sklearn.log_model(fitted, name="model", pip_requirements=["scikit-learn"])
    return model, [str(mlflow.register_model(logged.model_uri, model).version)
                   for _ in range(count)]


def test_an_alias_moved_outside_the_ledger_is_reported_not_recorded():
    model, (first, second) = _registered(2)
    promote(model, first, actor="alice", mode="manual", reason="first")
    assert champion_check(model) is None
    registry.set_alias(model, registry.CHAMPION, second)  # by hand, in MLflow
    assert champion_check(model) == (f"@champion is v{second} but the ledger's last move left "
                                     f"v{first}: moved outside promote/rollback")
    assert read_ledger(model)["decision"].tolist() == ["promoted"]
