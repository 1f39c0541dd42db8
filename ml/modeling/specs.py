"""Declarative model specs: one YAML file per model in ``ml/modeling/model_specs/``.

Adding a model takes a dbt training-set model and a spec file; no Python. A spec is
validated on load and an error names the file and the field.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LearnerKind = Literal["xgboost", "logistic_regression", "recency_rule", "bgnbd", "group_mean"]
BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile",
                  "capture_top_decile", "lift_share_of_max")
REGRESSION_METRICS = ("rmse", "mae", "normalized_gini", "calibration_error")


# ``candidate: best``: every learner is back-tested and the best on the primary metric is
# registered (ties go to the simpler learner: ml.modeling.backtest.choose_candidate).
BEST = "best"


class SpecError(ValueError):
    """A model spec file is missing, malformed or inconsistent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scoring(_Strict):
    relation: str
    population_column: str | None = None
    id_column: str = "customer_id"
    segment_column: str | None = None  # one score per (customer, segment), e.g. per channel


class Columns(_Strict):
    id: str = "customer_id"
    as_of: str = "as_of_date"
    label: str = "label"
    label_matured_on: str = "label_matured_on"


class Features(_Strict):
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)


class Learner(_Strict):
    kind: LearnerKind
    params: dict = Field(default_factory=dict)


class Backtest(_Strict):
    folds: int = Field(4, ge=1, le=24)
    bootstrap_samples: int = Field(300, ge=50, le=5000)


class Promotion(_Strict):
    min_improvement: float = Field(0.0, ge=0)
    floors: dict[str, float] = Field(default_factory=dict)


class Oracle(_Strict):
    """The simulator's true probabilities (synthetic data only): ``relation`` holds
    P(no completed order within h days) per customer and snapshot for a few horizons
    (``ml.schema.ORACLE_HORIZONS``); the spec's own ``horizon_days`` picks the column."""

    relation: str
    event: Literal["no_order", "order"]  # what the label is: churn = no_order


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    description: str
    task: Literal["binary", "regression"]
    training_set: str = Field(pattern=r"^[A-Za-z_][\w]*\.[A-Za-z_][\w]*$")
    scoring: Scoring
    columns: Columns = Columns()
    label_description: str
    population_description: str
    horizon_days: int = Field(ge=1, le=730)
    # The dbt var the training set's label is built with: the features DAG sets it to
    # horizon_days, so the spec is the one place the horizon is written.
    horizon_var: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    features: Features = Features()
    candidate: str
    learners: dict[str, Learner]
    primary_metric: str
    guardrails: dict[str, float] = Field(default_factory=dict)
    backtest: Backtest = Backtest()
    promotion: Promotion = Promotion()
    max_training_rows: int = Field(300_000, ge=1_000)
    requires: list[str] = Field(default_factory=list)  # optional raw tables the model needs
    oracle: Oracle | None = None
    source_path: str = ""
    spec_hash: str = ""

    @field_validator("learners")
    @classmethod
    def _at_least_one(cls, learners: dict[str, Learner]) -> dict[str, Learner]:
        if not learners:
            raise ValueError("at least one learner is required")
        return learners

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.candidate != BEST and self.candidate not in self.learners:
            raise ValueError(f"candidate {self.candidate!r} is neither {BEST!r} nor one of "
                             f"learners {sorted(self.learners)}")
        metrics = BINARY_METRICS if self.task == "binary" else REGRESSION_METRICS
        for field_name, names in (("primary_metric", [self.primary_metric]),
                                  ("guardrails", list(self.guardrails)),
                                  ("promotion.floors", list(self.promotion.floors))):
            unknown = [m for m in names if m not in metrics]
            if unknown:
                raise ValueError(f"{field_name}: unknown metric(s) {unknown} for task "
                                 f"{self.task}; choose from {list(metrics)}")
        return self

    @property
    def baselines(self) -> list[str]:
        return [name for name in self.learners if name != self.candidate]

    def with_candidate(self, name: str) -> ModelSpec:
        """This spec with ``name`` (one of its learners) as the candidate: what a spec with
        ``candidate: best`` becomes once the back-test has chosen."""
        if name not in self.learners:
            raise SpecError(f"model {self.name}: {name!r} is not one of {sorted(self.learners)}")
        return self.model_copy(update={"candidate": name})


def specs_dir() -> Path:
    return Path(os.environ.get("MODEL_SPECS_DIR", Path(__file__).resolve().parent / "model_specs"))


def load_spec(path: Path) -> ModelSpec:
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
    except FileNotFoundError:
        raise SpecError(f"{path}: model spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a model spec must be a mapping of fields")
    try:
        spec = ModelSpec(**raw, source_path=str(path),
                         spec_hash=hashlib.sha256(text.encode()).hexdigest()[:16])
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(spec)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise SpecError(f"{path}: {problems}") from None
    if spec.name != path.stem:
        raise SpecError(f"{path}: field 'name' is {spec.name!r} but the file is named "
                        f"{path.name}; they must match")
    return spec


def spec_paths() -> list[Path]:
    return sorted(specs_dir().glob("*.yaml"))


def load_specs() -> dict[str, ModelSpec]:
    return {spec.name: spec for spec in map(load_spec, spec_paths())}


def get_spec(name: str) -> ModelSpec:
    path = specs_dir() / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in spec_paths())
        raise SpecError(f"No model spec {name!r} in {specs_dir()}; known: {known}")
    return load_spec(path)
