"""Model specs: the shipped ones load; broken ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.modeling.specs import SpecError, load_spec, load_specs, specs_dir


def test_shipped_specs_load():
    specs = load_specs()
    assert {"churn", "purchase_propensity"} <= set(specs)
    churn = specs["churn"]
    assert churn.task == "binary"
    assert churn.candidate == "best"  # chosen by the back-test
    chosen = churn.with_candidate("xgboost")
    assert set(chosen.baselines) == {"logistic_regression", "recency_rule", "bgnbd"}
    with pytest.raises(SpecError, match="not one of"):
        churn.with_candidate("lightgbm")
    assert churn.spec_hash and len(churn.spec_hash) == 16


def _write(tmp_path: Path, name: str, **changes) -> Path:
    raw = yaml.safe_load((specs_dir() / "churn.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(leaf)
        else:
            node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"task": "clustering"}, "task", "binary"),
        ({"primary_metric": "accuracy"}, "(spec)", "unknown metric"),
        ({"candidate": "lightgbm"}, "(spec)", "neither 'best' nor one of learners"),
        ({"backtest__folds": 0}, "backtest.folds", "greater than or equal to 1"),
        ({"learners__xgboost__kind": "no_such_learner"}, "learners.xgboost.kind", "xgboost"),
        ({"horizon_days": None}, "horizon_days", "Field required"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
        ({"training_set": "no_schema"}, "training_set", "pattern"),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path, changes, field, fragment):
    path = _write(tmp_path, "churn", **changes)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert fragment in message


def test_name_must_match_file(tmp_path):
    path = _write(tmp_path, "other_name")
    with pytest.raises(SpecError, match="named other_name.yaml"):
        load_spec(path)


def test_not_yaml(tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_adding_a_model_is_a_spec_file(tmp_path, monkeypatch):
    for spec in specs_dir().glob("*.yaml"):
        (tmp_path / spec.name).write_text(spec.read_text())
    new = yaml.safe_load((specs_dir() / "churn.yaml").read_text())
    new["name"] = "churn_60d"
    new["horizon_days"] = 60
    (tmp_path / "churn_60d.yaml").write_text(yaml.safe_dump(new))
    monkeypatch.setenv("MODEL_SPECS_DIR", str(tmp_path))
    assert "churn_60d" in load_specs()
