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

LearnerKind = Literal["xgboost", "logistic_regression", "recency_rule", "bgnbd", "group_mean",
                      "lightgbm", "catboost", "hist_gradient_boosting", "flaml",
                      "popularity", "repeat", "item_knn", "ease", "als", "two_stage",
                      "t_learner", "x_learner", "churn_rank", "random_rank"]
BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile",
                  "capture_top_decile", "lift_share_of_max")
REGRESSION_METRICS = ("rmse", "mae", "normalized_gini", "calibration_error")
# Item recommendation (ml.recommend): per-customer ranking metrics at each k, split into
# repeat and new-to-customer items, and catalogue-level coverage, novelty, popularity bias.
RANKING_KS = (5, 10, 20)
RANKING_METRICS = tuple(
    f"{metric}_at_{k}" for k in RANKING_KS
    for metric in ("recall", "ndcg", "map", "hit_rate", "recall_repeat", "recall_new",
                   "coverage", "novelty", "popularity_bias"))
RANKING_LEARNERS = ("popularity", "repeat", "item_knn", "ease", "als", "two_stage")
# Uplift (ml.uplift): how well a score ranks customers by the effect of contact, measured on
# randomised campaigns (Qini coefficient, AUUC, treated - control rate at the capacity).
UPLIFT_METRICS = ("qini", "auuc", "uplift_at_capacity")
UPLIFT_LEARNERS = ("t_learner", "x_learner", "churn_rank", "random_rank")


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


class SearchDimension(_Strict):
    """One hyper-parameter's range for the tuner: ``int`` and ``float`` take ``low``/``high``
    (``log`` for a log-uniform scale), ``categorical`` takes ``choices``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"an {self.type} dimension needs low < high; got low={self.low}, "
                             f"high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale dimension needs low > 0; got low={self.low}")
        if self.type == "int" and not (float(self.low).is_integer()
                                       and float(self.high).is_integer()):
            raise ValueError(f"an int dimension needs whole bounds; got {self.low}..{self.high}")
        return self


class Tuning(_Strict):
    """Optuna search per back-test fold, on that fold's own past only (nested rolling: see
    ``ml.modeling.tuning``). ``inner_folds`` latest matured snapshots before the fold are the
    tuner's validation folds; a search stops at ``trials`` or ``timeout_seconds``."""

    trials: int = Field(20, ge=1, le=1000)
    timeout_seconds: float | None = Field(None, gt=0)
    inner_folds: int = Field(1, ge=1, le=6)
    space: dict[str, SearchDimension]

    @field_validator("space")
    @classmethod
    def _not_empty(cls, space: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        if not space:
            raise ValueError("a tuning space needs at least one parameter")
        return space


class Learner(_Strict):
    kind: LearnerKind
    params: dict = Field(default_factory=dict)
    tuning: Tuning | None = None


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


class Recommend(_Strict):
    """Serving rules of a ranking spec: list length, what not to show again, the holdout."""

    k: int = Field(10, ge=1, le=200)
    # an item bought in the last N days is not recommended again, unless its category is
    # repeatable (staples are meant to be rebought)
    exclude_bought_within_days: int = Field(30, ge=0, le=3650)
    repeatable_categories: list[str] = Field(default_factory=list)
    # a seeded random share of customers gets the popularity list: the measured control
    holdout_share: float = Field(0.05, ge=0.0, le=0.5)
    holdout_seed: int = 0


class Uplift(_Strict):
    """The campaign columns of an uplift spec's training set, and what the back-test
    measures: ``capacity_share`` = the share of customers a campaign's budget reaches."""

    treatment_column: str = "treated"
    campaign_column: str = "campaign"
    channel_column: str = "channel"  # a feature: the effect of contact depends on it
    capacity_share: float = Field(0.3, gt=0, le=1)
    # the simulator's true effect per (campaign, customer): synthetic data only, never read
    # by a model; the back-test's oracle
    oracle_relation: str | None = None


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    description: str
    task: Literal["binary", "regression", "ranking", "uplift"]
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
    recommend: Recommend | None = None  # ranking specs only
    uplift: Uplift | None = None  # uplift specs only
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
        metrics = {"binary": BINARY_METRICS, "regression": REGRESSION_METRICS,
                   "ranking": RANKING_METRICS, "uplift": UPLIFT_METRICS}[self.task]
        if {learner.kind in RANKING_LEARNERS for learner in self.learners.values()} != {
                self.task == "ranking"}:
            raise ValueError(f"task {self.task}: learners {sorted(self.learners)} must all be "
                             f"{'' if self.task == 'ranking' else 'non-'}ranking learners "
                             f"({', '.join(RANKING_LEARNERS)})")
        if (self.recommend is not None) != (self.task == "ranking"):
            raise ValueError("a ranking spec needs a 'recommend' block; other tasks take none")
        if {learner.kind in UPLIFT_LEARNERS for learner in self.learners.values()} != {
                self.task == "uplift"}:
            raise ValueError(f"task {self.task}: learners {sorted(self.learners)} must all be "
                             f"{'' if self.task == 'uplift' else 'non-'}uplift learners "
                             f"({', '.join(UPLIFT_LEARNERS)})")
        if (self.uplift is not None) != (self.task == "uplift"):
            raise ValueError("an uplift spec needs an 'uplift' block; other tasks take none")
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
