"""The uplift spec is a spec like the others: validated on load, errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.modeling.specs import SpecError, load_spec
from ml.uplift.learners import build_uplift_learner

SPEC = Path(__file__).resolve().parents[2] / "ml" / "uplift" / "uplift.yaml"


def test_the_shipped_spec_loads_and_builds_its_learners():
    spec = load_spec(SPEC)
    assert spec.task == "uplift" and spec.primary_metric == "qini"
    assert spec.uplift.treatment_column == "treated" and spec.requires == ["campaign_assignments"]
    for learner in spec.learners.values():
        build_uplift_learner(learner.kind, learner.params, ["recency"], ["channel"], 90)


@pytest.mark.parametrize(("change", "message"), [
    ({"uplift": None}, "needs an 'uplift' block"),
    ({"primary_metric": "roc_auc"}, "unknown metric"),
    ({"learners": {"xgboost": {"kind": "xgboost"}}}, "must all be uplift learners"),
])
def test_a_broken_uplift_spec_names_the_field(tmp_path, change, message):
    raw = yaml.safe_load(SPEC.read_text())
    raw.update(change)
    if raw["uplift"] is None:
        del raw["uplift"]
    raw["candidate"] = "best"
    path = tmp_path / "uplift.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_a_binary_spec_may_not_carry_uplift_learners(tmp_path):
    raw = yaml.safe_load((SPEC.parents[1] / "modeling" / "model_specs" / "churn.yaml").read_text())
    raw["learners"]["t"] = {"kind": "t_learner"}
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="must all be non-uplift learners"):
        load_spec(path)
