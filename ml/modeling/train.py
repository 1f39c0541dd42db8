"""Train one model from its spec: back-test, final fit, MLflow run, registered challenger."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ml import registry
from ml.modeling.backtest import (
    BacktestResult,
    choose_candidate,
    gains_over,
    run_backtest,
    task_metrics,
)
from ml.modeling.learners import build_pipeline
from ml.modeling.specs import BEST, Learner, ModelSpec, get_spec
from ml.modeling.training_data import (
    ModelNotApplicable,
    TrainingDataError,
    TrainingSet,
    load_training_set,
    read_relation,
)
from ml.modeling.tuning import tune
from ml.schema import ORACLE_HORIZONS, oracle_column
from ml.settings import REPO_ROOT, get_settings
from ml.warehouse import get_warehouse, split_name

log = logging.getLogger(__name__)

CHAMPION_RECIPE = "champion"
ORACLE = "oracle"


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)


def apply_overrides(spec: ModelSpec, learners: list[str] | None = None, folds: int | None = None,
                    max_training_rows: int | None = None,
                    horizon_days: int | None = None) -> ModelSpec:
    update: dict = {}
    if horizon_days:
        update["horizon_days"] = horizon_days
    if learners:
        unknown = sorted(set(learners) - set(spec.learners))
        if unknown:
            raise TrainingDataError(f"model {spec.name}: unknown learner(s) {unknown}; the spec "
                                    f"has {sorted(spec.learners)}")
        keep = set(learners) | ({spec.candidate} - {BEST})
        update["learners"] = {k: v for k, v in spec.learners.items() if k in keep}
    if folds:
        update["backtest"] = spec.backtest.model_copy(update={"folds": folds})
    if max_training_rows:
        update["max_training_rows"] = max_training_rows
    return spec.model_copy(update=update) if update else spec


def _restricted(data: TrainingSet, features: list[str]) -> TrainingSet | None:
    numeric = [c for c in data.numeric if c in features]
    categorical = [c for c in data.categorical if c in features]
    if len(numeric) + len(categorical) != len(features):
        return None
    return TrainingSet(data.frame, numeric, categorical, data.source_rows, data.sampled,
                       data.fingerprint, data.unavailable)


def _add_reference(result: BacktestResult, spec: ModelSpec, name: str, other: BacktestResult):
    """Merge another back-test's predictions (same folds and rows) under column ``name``."""
    key = ["fold", spec.columns.id]
    merged = result.predictions.merge(
        other.predictions[key + [spec.candidate]].rename(columns={spec.candidate: name}),
        on=key, how="left", validate="one_to_one")
    result.predictions = merged
    rows = other.fold_metrics[other.fold_metrics.learner == spec.candidate].assign(learner=name)
    result.fold_metrics = pd.concat([result.fold_metrics, rows], ignore_index=True)


def add_oracle(result: BacktestResult, spec: ModelSpec) -> str | None:
    """Join the simulator's true probabilities for the spec's horizon (synthetic data only)
    as a ceiling. Returns why there is no oracle, or None when it was added."""
    if spec.oracle is None:
        return "the spec names no oracle"
    column = oracle_column(spec.horizon_days)
    schema, table = split_name(spec.oracle.relation)
    available = get_warehouse().columns(schema, table)
    if not available:
        return f"no {spec.oracle.relation} (real data: the ceiling is unknown)"
    if column not in available:
        return (f"{spec.oracle.relation} covers horizons {list(ORACLE_HORIZONS)} days, not "
                f"{spec.horizon_days}: no oracle for this horizon")
    oracle = read_relation(spec.oracle.relation, [spec.columns.id, "as_of_date", column])
    no_order = oracle.pop(column)
    oracle[ORACLE] = no_order if spec.oracle.event == "no_order" else 1 - no_order
    oracle = oracle.rename(columns={"as_of_date": "as_of"})
    oracle["as_of"] = pd.to_datetime(oracle["as_of"])
    preds = result.predictions.merge(oracle, on=[spec.columns.id, "as_of"], how="left")
    missing = preds[ORACLE].isna().mean()
    if missing > 0.01:
        return f"{spec.oracle.relation} lacks {missing:.0%} of the back-test rows"
    result.predictions = preds
    rows = []
    for (fold, as_of), part in preds.groupby(["fold", "as_of"]):
        if part["y"].nunique() < 2:
            continue
        for metric, value in task_metrics(spec.task, part["y"].to_numpy(),
                                          part[ORACLE].to_numpy()).items():
            rows.append((fold, as_of, ORACLE, metric, value))
    result.fold_metrics = pd.concat(
        [result.fold_metrics, pd.DataFrame(rows, columns=result.fold_metrics.columns)],
        ignore_index=True)
    return None


def check_label_window(spec: ModelSpec) -> None:
    """The training set's labels were built with the spec's horizon: the features DAG sets
    the spec's ``horizon_var`` from ``horizon_days`` and the build records it in
    ``marts.snapshot_calendar``; a build with another value fails here, not silently."""
    if spec.horizon_var is None:
        return
    calendar = "marts.snapshot_calendar"
    schema, table = split_name(calendar)
    if spec.horizon_var not in get_warehouse().columns(schema, table):
        raise TrainingDataError(
            f"model {spec.name}: {calendar} has no column {spec.horizon_var} (the spec's "
            "horizon_var); run the features DAG, or add the var to snapshot_calendar.sql")
    built = sorted(set(read_relation(calendar, [spec.horizon_var])[spec.horizon_var]))
    if built != [spec.horizon_days]:
        raise TrainingDataError(
            f"model {spec.name}: the labels in {spec.training_set} were built with "
            f"{spec.horizon_var}={built} but the spec's horizon_days is {spec.horizon_days}. "
            "Re-run the features DAG (it passes each spec's horizon to dbt), or train with "
            f"the same horizon override the features run used (horizon_days={built[0]}).")


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _manifest_hash() -> str:
    """Hash of the dbt nodes' own checksums (stable across re-parses of the same code)."""
    import hashlib

    path = get_settings().dbt_manifest_path
    if not path.exists():
        return "unknown"
    nodes = json.loads(path.read_text()).get("nodes", {})
    digest = hashlib.sha256()
    for key in sorted(nodes):
        digest.update(f"{key}:{nodes[key].get('checksum', {}).get('checksum', '')}".encode())
    return digest.hexdigest()[:16]


def evaluate(spec: ModelSpec, data: TrainingSet,
             timer: StageTimer) -> tuple[ModelSpec, BacktestResult, dict]:
    """Back-test the spec's learners, choose the candidate (``candidate: best``), re-fit the
    champion's recipe (if any) on the same folds and add the oracle; bootstrap the
    candidate's gain over every baseline and over the champion. Returns the spec with its
    candidate chosen."""
    with timer.stage("backtest"):
        result = run_backtest(spec, data, spec.learners)
    selection = choose_candidate(result, spec)
    spec = spec.with_candidate(selection["winner"])
    champion = registry.champion_recipe(spec.name)
    champion_info = None
    if champion is not None:
        restricted = _restricted(data, champion["features"])
        if restricted is not None:
            with timer.stage("backtest_champion"):
                recipe = Learner(kind=champion["kind"], params=champion["params"],
                                 tuning=champion.get("tuning"))
                other = run_backtest(spec.model_copy(update={"learners": {spec.candidate: recipe}}),
                                     restricted, {spec.candidate: recipe})
            _add_reference(result, spec, CHAMPION_RECIPE, other)
        champion_info = {"version": champion["version"], "comparable": restricted is not None}
    no_oracle = add_oracle(result, spec)
    with timer.stage("bootstrap"):
        gains = gains_over(result, spec, spec.candidate, [*spec.baselines, CHAMPION_RECIPE])
    tuning = {name: {"folds": [record.summary(data, spec) for record in records]}
              for name, records in result.tuning.items()}
    return spec, result, {"champion": champion_info, "oracle": no_oracle is None,
                          "oracle_note": no_oracle, "gains": gains,
                          "selection": selection, "tuning": tuning}


def train_model(name: str, learners: list[str] | None = None, folds: int | None = None,
                max_training_rows: int | None = None, unavailable: list[str] | None = None,
                horizon_days: int | None = None) -> dict:
    """The whole training job for one model. Returns a JSON-able summary (for XCom and the
    CLI). ``horizon_days`` overrides the spec's for this run (the features run must have
    used the same: see ``check_label_window``)."""
    from ml.marts import raw_tables_present, unavailable_features
    from ml.modeling.report import log_training_run

    timer = StageTimer()
    spec = apply_overrides(get_spec(name), learners, folds, max_training_rows, horizon_days)
    missing = sorted(set(spec.requires) - raw_tables_present())
    if missing:
        raise ModelNotApplicable(f"model {spec.name} needs raw table(s) {missing}, which this "
                                 "data does not have; skipped (import them to train it)")
    check_label_window(spec)
    if unavailable is None:
        unavailable = unavailable_features()
    with timer.stage("load"):
        data = load_training_set(spec, unavailable=unavailable)
    spec, result, evidence = evaluate(spec, data, timer)
    with timer.stage("final_fit"):
        learner = spec.learners[spec.candidate]
        if learner.tuning is not None:  # searched on the whole history, nested like the folds
            learner, record = tune(spec, data, learner, before=None)
            evidence["tuning"].setdefault(spec.candidate, {})["final"] = record.summary(data, spec)
        final = build_pipeline(learner, spec.task, data.numeric,
                               data.categorical, spec.horizon_days)
        final.fit(data.frame[data.features], data.frame[spec.columns.label].to_numpy(dtype=float))
    lineage = {
        "data_window": f"{data.frame[spec.columns.as_of].min():%Y-%m-%d}.."
                       f"{data.frame[spec.columns.as_of].max():%Y-%m-%d}",
        "data_fingerprint": data.fingerprint,
        "git_sha": _git_sha(),
        "dbt_manifest_hash": _manifest_hash(),
        "spec_hash": spec.spec_hash,
    }
    with timer.stage("log_and_register"), tempfile.TemporaryDirectory() as tmp:
        logged = log_training_run(spec, data, result, evidence, final, lineage, Path(tmp))
    return {**logged, "model": spec.name, "stage_seconds": timer.seconds,
            "rows": {"source": data.source_rows, "used": len(data.frame), "sampled": data.sampled}}

