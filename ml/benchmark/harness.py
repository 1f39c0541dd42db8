"""The benchmark harness: every learner on the same rolling folds of one model's training set.

Each learner is back-tested by the training job's own ``run_backtest`` (so a tuned learner
searches on each fold's past only), one learner at a time while its process memory is
sampled. The predictions are pooled per fold; metrics per fold give the mean the ranking
uses (as ``choose_candidate`` does), and resampling the rows within each fold gives the
bootstrap CIs of that mean, for each learner's metrics and for each gap in the ranking.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ml.benchmark import economics
from ml.benchmark.reference import (
    REFERENCE_FACTOR,
    build_reference,
    history_customers,
    load_reference,
    synthetic_window,
)
from ml.modeling import metrics as m
from ml.modeling.backtest import (
    BacktestResult,
    choose_candidate,
    plan_folds,
    run_backtest,
    task_metrics,
)
from ml.modeling.learners import build_pipeline, predict
from ml.modeling.report import gap_closed, summary_table
from ml.modeling.specs import Learner, ModelSpec, get_spec
from ml.modeling.train import ORACLE, add_oracle, apply_overrides, check_label_window
from ml.modeling.training_data import TrainingDataError, TrainingSet, load_training_set
from ml.modeling.tuning import tune

log = logging.getLogger(__name__)

ROSTER_PATH = Path(__file__).with_name("roster.yaml")
REFERENCE = "data_rich_reference"
PREDICT_ROWS = 200_000  # rows timed per prediction, reported per 1M
MIN_LEARNERS = 6


def roster(spec: ModelSpec, names: list[str] | None = None, trials: int | None = None,
           automl_seconds: float | None = None) -> dict[str, Learner]:
    """The spec's learners, then the benchmark's own for the spec's task (a spec learner of
    the same name wins); ``names`` picks some. ``trials`` and ``automl_seconds`` shrink or
    grow every search (tuned learners, FLAML) for one run."""
    rosters = yaml.safe_load(ROSTER_PATH.read_text())
    if spec.task not in rosters:
        raise TrainingDataError(f"benchmark of {spec.name}: task {spec.task!r} is not "
                                f"benchmarked here; tasks: {sorted(rosters)}")
    extra = rosters[spec.task]
    learners = {**{n: Learner(**raw) for n, raw in extra.items()}, **spec.learners}
    learners = {n: learners[n] for n in [*spec.learners, *extra]}
    if names:
        unknown = sorted(set(names) - set(learners))
        if unknown:
            raise TrainingDataError(f"benchmark of {spec.name}: unknown learner(s) {unknown}; "
                                    f"choose from {list(learners)}")
        learners = {n: learners[n] for n in learners if n in names}
    out = {}
    for name, learner in learners.items():
        update = {}
        if trials and learner.tuning is not None:
            update["tuning"] = learner.tuning.model_copy(update={"trials": trials})
        if automl_seconds and learner.kind == "flaml":
            update["params"] = {**learner.params, "time_budget": automl_seconds}
        out[name] = learner.model_copy(update=update) if update else learner
    return out


@contextmanager
def memory_sampler(interval: float = 0.02):
    """Peak resident memory of this process while the block runs (sampled every
    ``interval`` seconds: native allocations of the GBM libraries count too)."""
    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    peak = {"rss": start}
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak["rss"] = max(peak["rss"], process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result: dict[str, float] = {}
    try:
        yield result
    finally:
        done.set()
        thread.join()
        peak["rss"] = max(peak["rss"], process.memory_info().rss)
        result.update(peak_mib=peak["rss"] / 2**20, increase_mib=(peak["rss"] - start) / 2**20)


def sample_customers(data: TrainingSet, spec: ModelSpec, customers: int,
                     seed: int = 0) -> TrainingSet:
    """All snapshots of ``customers`` customers drawn at random: a smaller history with
    the same folds."""
    ids = data.frame[spec.columns.id].unique()
    if customers >= len(ids):
        return data
    keep = np.random.default_rng(seed).choice(ids, size=customers, replace=False)
    frame = data.frame[data.frame[spec.columns.id].isin(keep)].reset_index(drop=True)
    return TrainingSet(frame, data.numeric, data.categorical, data.source_rows, data.sampled,
                       data.fingerprint, data.unavailable)


@dataclass
class _Run:
    """One learner's back-test and what it cost."""

    result: BacktestResult | None
    memory: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def _run_learner(spec: ModelSpec, data: TrainingSet, name: str, learner: Learner) -> _Run:
    started = time.perf_counter()
    try:
        with memory_sampler() as memory:
            result = run_backtest(spec, data, {name: learner})
    except Exception as exc:  # noqa: BLE001 - one failing library must not sink the report
        log.exception("benchmark: learner %s failed", name)
        return _Run(None, {}, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    return _Run(result, memory, time.perf_counter() - started)


def _predict_seconds_per_million(model, spec: ModelSpec, X: pd.DataFrame, rows: int) -> float:
    """Time to score ``rows`` rows (the test rows repeated), per 1M rows."""
    reps = int(np.ceil(rows / len(X)))
    big = pd.concat([X] * reps, ignore_index=True).iloc[:rows]
    started = time.perf_counter()
    predict(model, big, spec.task)
    return (time.perf_counter() - started) / rows * 1e6


def _reference_predictions(spec: ModelSpec, data: TrainingSet, learner: Learner,
                           reference: TrainingSet, name: str) -> BacktestResult:
    """``learner`` fitted for each fold on the reference history's rows matured by the
    fold's date, scored on the benchmarked history's fold rows."""
    cols = spec.columns
    plan = plan_folds(data.frame[cols.as_of], data.frame[cols.label_matured_on],
                      spec.backtest.folds)
    ref_y = reference.frame[cols.label].to_numpy(dtype=float)
    ref_X = reference.frame[data.features]
    y = data.frame[cols.label].to_numpy(dtype=float)
    parts, rows = [], []
    for fold in plan:
        train = np.flatnonzero((reference.frame[cols.label_matured_on] <= fold.as_of).to_numpy())
        if not train.size or (spec.task == "binary" and len(np.unique(ref_y[train])) < 2):
            continue
        fitted = learner
        if learner.tuning is not None:
            fitted, _ = tune(spec, reference, learner, before=fold.as_of)
        model = build_pipeline(fitted, spec.task, data.numeric, data.categorical,
                               spec.horizon_days)
        model.fit(ref_X.iloc[train], ref_y[train])
        test = data.frame.iloc[fold.test_rows]
        p = predict(model, test[data.features], spec.task)
        parts.append(pd.DataFrame({"fold": fold.index, cols.id: test[cols.id].to_numpy(),
                                   name: p}))
        if spec.task == "binary" and len(np.unique(y[fold.test_rows])) < 2:
            continue
        rows += [(fold.index, fold.as_of, name, metric, value)
                 for metric, value in task_metrics(spec.task, y[fold.test_rows], p).items()]
    return BacktestResult(pd.concat(parts, ignore_index=True),
                          pd.DataFrame(rows, columns=["fold", "as_of", "learner", "metric",
                                                      "value"]))


def _merge(spec: ModelSpec, runs: dict[str, _Run]) -> BacktestResult:
    key = ["fold", spec.columns.id]
    done = [r.result for r in runs.values() if r.result is not None]
    predictions = done[0].predictions[["fold", "as_of", spec.columns.id, "y"]]
    for result in done:
        learner = [c for c in result.predictions.columns if c not in (*key, "as_of", "y")]
        predictions = predictions.merge(result.predictions[key + learner], on=key, how="left",
                                        validate="one_to_one")
    return BacktestResult(predictions,
                          pd.concat([r.fold_metrics for r in done], ignore_index=True))


def _add_columns(result: BacktestResult, spec: ModelSpec, other: BacktestResult) -> None:
    key = ["fold", spec.columns.id]
    result.predictions = result.predictions.merge(other.predictions, on=key, how="left",
                                                  validate="one_to_one")
    result.fold_metrics = pd.concat([result.fold_metrics, other.fold_metrics],
                                    ignore_index=True)


def _ci(spec: ModelSpec, preds: pd.DataFrame, column: str, metric: str) -> dict | None:
    rows = preds[preds[column].notna()]
    try:
        return m.bootstrap_ci(rows["y"].to_numpy(), rows[column].to_numpy(), metric,
                              n_boot=spec.backtest.bootstrap_samples,
                              groups=rows["fold"].to_numpy(), mean_over_groups=True)
    except ValueError:  # e.g. a metric undefined on these rows
        return None


def _gap(spec: ModelSpec, preds: pd.DataFrame, better: str, worse: str) -> dict:
    rows = preds[preds[better].notna() & preds[worse].notna()]
    gain = m.bootstrap_gain_ci(rows["y"].to_numpy(), rows[better].to_numpy(),
                               rows[worse].to_numpy(), spec.primary_metric,
                               n_boot=spec.backtest.bootstrap_samples,
                               groups=rows["fold"].to_numpy(), mean_over_groups=True)
    return {"vs": worse, **gain, "significant": bool(gain["low"] > 0)}


def _limit(spec: ModelSpec, summary: dict, model: str | None, baselines: list[str]) -> dict:
    """The three numbers: the model, the data-rich reference, the oracle; and what share of
    the distance from the best baseline each covers."""
    metric = spec.primary_metric
    closed = gap_closed(summary, spec.with_candidate(model), baselines) if model else None
    out = {"metric": metric, "model": model,
           "model_value": summary[model][metric]["mean"] if model else None,
           "reference_value": summary.get(REFERENCE, {}).get(metric, {}).get("mean"),
           "oracle_value": summary.get(ORACLE, {}).get(metric, {}).get("mean"),
           "best_baseline": closed["best_baseline"] if closed else None,
           "best_baseline_value": closed["best_baseline_value"] if closed else None,
           "share_of_gap_closed": closed["share_closed"] if closed else None}
    best, oracle, reference = (out["best_baseline_value"], out["oracle_value"],
                               out["reference_value"])
    if closed and reference is not None and oracle is not None and oracle != best:
        out["reference_share_of_gap"] = (reference - best) / (oracle - best)
        out["model_to_reference"] = out["model_value"] - reference
    return out


def benchmark(spec: ModelSpec, data: TrainingSet, learners: dict[str, Learner],
              reference: TrainingSet | None = None, reference_note: str | None = None,
              campaign: economics.Campaign | str | None = None,
              predict_rows: int = PREDICT_ROWS) -> tuple[dict, BacktestResult]:
    """The benchmark of ``learners`` on ``data``: a JSON-able summary, and the merged
    back-test (every learner's predictions per fold) for the report's plots. Adds the
    oracle when the warehouse has one, the data-rich reference when ``reference`` is given
    and the profit at capacity when ``campaign`` is (otherwise why not: a note)."""
    started = time.perf_counter()
    cols = spec.columns
    runs = {}
    for name, learner in learners.items():
        log.info("benchmark %s: %s (%s)", spec.name, name, learner.kind)
        runs[name] = _run_learner(spec, data, name, learner)
    if all(r.result is None for r in runs.values()):
        raise TrainingDataError(f"benchmark of {spec.name}: every learner failed: "
                                + "; ".join(f"{n}: {r.error}" for n, r in runs.items()))
    result = _merge(spec, runs)
    oracle_note = add_oracle(result, spec)
    in_spec = [n for n in spec.learners if n in runs and runs[n].result is not None]
    model = None
    if in_spec:  # the learner training would register, among the spec's own
        only_spec = spec.model_copy(update={"learners": {n: spec.learners[n] for n in in_spec}})
        model = choose_candidate(result, only_spec)["winner"]
    reference_info = {"note": reference_note}
    if reference is not None and model is not None:
        ref_started = time.perf_counter()
        _add_columns(result, spec, _reference_predictions(spec, data, learners[model],
                                                          reference, REFERENCE))
        reference_info = {"learner": model, "rows": len(reference.frame),
                          "source_rows": reference.source_rows,
                          "customers": int(reference.frame[cols.id].nunique()),
                          "seconds": round(time.perf_counter() - ref_started, 1), "note": None}
    summary = summary_table(result)
    preds = result.predictions
    metrics = [spec.primary_metric, *spec.guardrails]
    sign = 1.0 if m.GREATER_IS_BETTER[spec.primary_metric] else -1.0
    campaign = campaign or "no campaign economics given"
    value = None
    if isinstance(campaign, economics.Campaign):
        if economics.VALUE_COLUMN in data.frame:
            values = data.frame[[cols.id, cols.as_of, economics.VALUE_COLUMN]].rename(
                columns={cols.as_of: "as_of"})
            value = preds[[cols.id, "as_of"]].merge(values, on=[cols.id, "as_of"], how="left")[
                economics.VALUE_COLUMN].fillna(0).to_numpy() * economics.MARGIN_RATE
        else:
            campaign = f"no {economics.VALUE_COLUMN} feature to value customers by"

    def profit(column: str) -> dict | None:
        if value is None:
            return None
        ok = preds[column].notna().to_numpy()
        return economics.profit_at_capacity(campaign, preds["fold"].to_numpy()[ok],
                                            preds["y"].to_numpy()[ok], value[ok],
                                            preds[column].to_numpy()[ok])

    def entry(name: str) -> dict:
        values = summary[name]
        return {
            "metrics": {metric: {**values[metric], "ci": _ci(spec, preds, name, metric)}
                        for metric in metrics if metric in values},
            "lift_top_decile": values.get("lift_top_decile", {}).get("mean"),
            "lift_share_of_max": values.get("lift_share_of_max", {}).get("mean"),
            "profit_at_capacity": profit(name),
        }

    rows = []
    test_rows = data.frame.iloc[np.flatnonzero(data.frame[cols.as_of].isin(preds["as_of"]))]
    for name, run in runs.items():
        learner = learners[name]
        row = {"learner": name, "kind": learner.kind, "params": learner.params,
               "tuned": learner.tuning is not None, "error": run.error}
        if run.result is not None:
            fitted = run.result
            row.update(entry(name))
            row.update({
                "fit_seconds": round(fitted.fit_seconds[name], 3),
                "tuning_seconds": round(sum(r.seconds for r in fitted.tuning.get(name, [])), 3),
                "backtest_seconds": round(run.seconds, 3),
                "predict_seconds_per_1m_rows": _predict_seconds_per_million(
                    fitted.latest_models[name], spec, test_rows[data.features], predict_rows),
                "peak_rss_mib": round(run.memory["peak_mib"], 1),
                "rss_increase_mib": round(run.memory["increase_mib"], 1),
                "tuning": [r.summary(data, spec) for r in fitted.tuning.get(name, [])],
            })
        rows.append(row)
    ranked = sorted((r for r in rows if r["error"] is None),
                    key=lambda r: -sign * summary[r["learner"]][spec.primary_metric]["mean"])
    ranking = []
    for position, row in enumerate(ranked):
        name = row["learner"]
        ranking.append({
            "rank": position + 1, "learner": name,
            "mean": summary[name][spec.primary_metric]["mean"],
            "gap_to_next": (_gap(spec, preds, name, ranked[position + 1]["learner"])
                            if position + 1 < len(ranked) else None),
            "gap_from_best": (_gap(spec, preds, ranked[0]["learner"], name)
                              if position else None),
        })
    folds = (preds.groupby(["fold", "as_of"]).size().reset_index(name="test_rows")
             .to_dict("records"))
    baselines = [n for n in in_spec if n != model]
    return {
        "model": spec.name, "task": spec.task, "primary_metric": spec.primary_metric,
        "guardrails": list(spec.guardrails), "training_set": spec.training_set,
        "data": {"rows": len(data.frame), "customers": int(data.frame[cols.id].nunique()),
                 "features": len(data.features), "sampled": data.sampled,
                 "folds": [{"fold": int(f["fold"]), "as_of": f"{f['as_of']:%Y-%m-%d}",
                            "test_rows": int(f["test_rows"])} for f in folds]},
        "learners": rows, "ranking": ranking,
        "oracle": entry(ORACLE) if ORACLE in summary else None, "oracle_note": oracle_note,
        "reference": {**reference_info, **(entry(REFERENCE) if REFERENCE in summary else {})},
        "limit": _limit(spec, summary, model, baselines),
        "campaign": (campaign.__dict__ | {"target_share": economics.TARGET_SHARE,
                                          "margin_rate": economics.MARGIN_RATE}
                     if isinstance(campaign, economics.Campaign) else {"note": campaign}),
        "predict_rows_timed": predict_rows,
        "seconds": round(time.perf_counter() - started, 1),
    }, result


def run_benchmark(model: str = "churn", learners: list[str] | None = None,
                  customers: int | None = None, reference_customers: int | None = None,
                  folds: int | None = None, trials: int | None = None,
                  automl_seconds: float | None = None, log_report: bool = True) -> dict:
    """``ml benchmark``: read the model's training set, benchmark the roster on it (a random
    ``customers`` of its customers, if given), add the data-rich reference on synthetic data
    (``reference_customers``, default 20x the history's customers; 0 skips it) and log the
    report to the MLflow experiment ``benchmark``. Returns the JSON-able summary."""
    from ml.benchmark.report import log_benchmark
    from ml.marts import unavailable_features

    started = time.perf_counter()
    spec = apply_overrides(get_spec(model), folds=folds)
    check_label_window(spec)
    unavailable = unavailable_features()
    data = load_training_set(spec, unavailable=unavailable)
    if customers:
        data = sample_customers(data, spec, customers)
    chosen = roster(spec, learners, trials, automl_seconds)
    reference, note, history = None, None, None
    if reference_customers == 0:
        note = "skipped (reference customers 0)"
    elif synthetic_window() is None:
        note = "real data: no generator to draw a larger history from"
    else:
        benchmarked = min(customers, history_customers()) if customers else history_customers()
        size = reference_customers or REFERENCE_FACTOR * benchmarked
        history = build_reference(spec, size)
        reference = load_reference(spec, history, unavailable)
    campaign = (economics.campaign_economics() if spec.name == economics.CAMPAIGN_MODEL
                else f"no campaign economics for {spec.name} (the retention campaign acts "
                     f"on {economics.CAMPAIGN_MODEL})")
    summary, result = benchmark(spec, data, chosen, reference=reference, reference_note=note,
                                campaign=campaign)
    if history is not None:
        summary["reference"]["history"] = {"customers": history.customers, "seed": history.seed,
                                           "start": str(history.start), "end": str(history.end)}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if log_report:
        summary["mlflow"] = log_benchmark(spec, summary, result)
    return summary
