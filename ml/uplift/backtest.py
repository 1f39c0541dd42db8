"""Back-test out of time by campaign.

Each of the latest ``folds`` campaigns is a fold. A fold trains only on campaigns whose
outcome had matured by the evaluated campaign's start (``label_matured_on <= as_of``), so
every training campaign lies strictly before it and nothing it learns looks past the
day the evaluated campaign was planned: what the platform could have known then. Each
learner's scores of the evaluated campaign's customers are judged on that campaign's
observed outcomes (Qini coefficient, AUUC, uplift at capacity); with the simulator's true
effects, the oracle (ranking by the true effect) is judged the same way, the ceiling the
observed outcomes allow. Gains over each baseline and over the champion's recipe, re-fitted
on the same folds, carry a paired bootstrap CI within campaigns.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ml.modeling.specs import BEST, ModelSpec
from ml.uplift.data import UpliftNotApplicable, UpliftSet
from ml.uplift.learners import SIMPLICITY, UpliftError, build_uplift_learner
from ml.uplift.metrics import bootstrap_gain_ci, uplift_metrics

CHAMPION = "champion"
ORACLE = "oracle"
MIN_ARM_ROWS = 20  # a fold needs this many treated and control rows, in training and test


def plan_campaign_folds(data: UpliftSet, spec: ModelSpec, folds: int) -> list[dict]:
    """The evaluated campaigns (latest last) and their training rows."""
    cols, campaign_column = spec.columns, spec.uplift.campaign_column
    frame = data.frame
    campaigns = (frame.groupby(campaign_column, sort=False)
                 .agg(as_of=(cols.as_of, "min"), matured=(cols.label_matured_on, "max"))
                 .sort_values(["as_of", "matured"], kind="stable"))
    plan = []
    for name, row in campaigns.iterrows():
        test = np.flatnonzero(frame[campaign_column].to_numpy() == name)
        train = np.flatnonzero((frame[cols.label_matured_on] <= row["as_of"]).to_numpy())
        arms = [data.treated[rows] for rows in (train, test)]
        if all(arm.sum() >= MIN_ARM_ROWS and (~arm).sum() >= MIN_ARM_ROWS for arm in arms):
            plan.append({"campaign": str(name), "as_of": row["as_of"], "train_rows": train,
                         "test_rows": test,
                         "train_campaigns": int(frame[campaign_column].iloc[train].nunique())})
    return plan[-folds:]


def run(spec: ModelSpec, data: UpliftSet, learners: dict[str, tuple[str, dict]],
        folds: int, effects: pd.DataFrame | None = None) -> dict:
    """Back-test every learner (``{name: (kind, params)}``, the champion's recipe among
    them as ``champion``); returns the evidence the card, the gate and the report read."""
    cols, uplift = spec.columns, spec.uplift
    plan = plan_campaign_folds(data, spec, folds)
    if not plan:
        campaigns = data.frame[uplift.campaign_column].nunique()
        raise UpliftNotApplicable(
            f"model {spec.name}, relation {spec.training_set}: {campaigns} campaign(s), but "
            f"none has an earlier campaign whose outcome matured before it started (with at "
            f"least {MIN_ARM_ROWS} treated and control customers each) to learn from; more "
            "past campaigns are needed")
    X = data.frame[data.features]
    y = data.frame[cols.label].to_numpy(dtype=float)
    truth = None
    if effects is not None:
        keyed = data.frame[[uplift.campaign_column, cols.id]].merge(
            effects, on=[uplift.campaign_column, cols.id], how="left")
        truth = keyed["effect"].to_numpy(dtype=float)
    parts, rows, fit_seconds = [], [], dict.fromkeys(learners, 0.0)
    for index, fold in enumerate(plan):
        test, train = fold["test_rows"], fold["train_rows"]
        part = pd.DataFrame({"fold": index, "campaign": fold["campaign"], "as_of": fold["as_of"],
                             cols.id: data.frame[cols.id].to_numpy()[test], "y": y[test],
                             "treated": data.treated[test]})
        scores = {}
        for name, (kind, params) in learners.items():
            model = build_uplift_learner(kind, params, data.numeric, data.categorical,
                                         spec.horizon_days)
            started = time.perf_counter()
            try:
                model.fit(X.iloc[train], data.treated[train], y[train])
            except UpliftError as exc:
                raise UpliftNotApplicable(f"model {spec.name}, fold {fold['campaign']}, "
                                          f"learner {name}: {exc}") from exc
            fit_seconds[name] += time.perf_counter() - started
            scores[name] = model.predict(X.iloc[test])
        if truth is not None and np.isfinite(truth[test]).all():
            scores[ORACLE] = truth[test]
        for name, score in scores.items():
            part[name] = score
            for metric, value in uplift_metrics(y[test], data.treated[test], score,
                                                uplift.capacity_share).items():
                rows.append((index, fold["campaign"], fold["as_of"], name, metric, value))
        parts.append(part)
    predictions = pd.concat(parts, ignore_index=True)
    fold_metrics = pd.DataFrame(rows, columns=["fold", "campaign", "as_of", "learner", "metric",
                                               "value"])
    summary = {}
    for (learner, metric), values in fold_metrics.groupby(["learner", "metric"])["value"]:
        summary.setdefault(learner, {})[metric] = {
            "mean": float(values.mean()),
            "std": float(values.std()) if len(values) > 1 else 0.0}
    selection = choose_candidate(spec, summary)
    candidate = selection["winner"]
    gains = {}
    for other in [n for n in learners if n != candidate]:
        gains[other] = bootstrap_gain_ci(
            predictions["y"].to_numpy(), predictions["treated"].to_numpy(),
            predictions[candidate].to_numpy(), predictions[other].to_numpy(),
            predictions["fold"].to_numpy(), spec.primary_metric,
            n_boot=spec.backtest.bootstrap_samples, capacity_share=uplift.capacity_share)
    return {"summary": summary, "gains": gains, "selection": selection, "candidate": candidate,
            "predictions": predictions, "fold_metrics": fold_metrics,
            "campaigns": [{"campaign": f["campaign"], "as_of": str(f["as_of"].date()),
                           "train_rows": int(f["train_rows"].size),
                           "train_campaigns": f["train_campaigns"],
                           "test_rows": int(f["test_rows"].size)} for f in plan],
            "fit_seconds": fit_seconds, "oracle": ORACLE in summary}


def choose_candidate(spec: ModelSpec, summary: dict) -> dict:
    """The learner a ``candidate: best`` spec registers: the best mean primary metric over
    the campaigns; a simpler learner within ``promotion.min_improvement`` is a tie and wins
    (random < churn rank < T-learner < X-learner). The champion's re-fit and the oracle are
    not candidates."""
    metric = spec.primary_metric
    means = {name: summary[name][metric]["mean"] for name in spec.learners}
    ranking = sorted(means, key=lambda name: -means[name])
    if spec.candidate != BEST:
        return {"rule": "named in the spec", "winner": spec.candidate, "metric": metric,
                "ranking": [{"learner": n, "mean": means[n]} for n in ranking]}
    best = ranking[0]
    tied = [n for n in ranking if means[best] - means[n] <= spec.promotion.min_improvement]
    winner = min(tied, key=lambda n: (SIMPLICITY.index(spec.learners[n].kind), -means[n]))
    runner_up = next((n for n in ranking if n != winner), None)
    return {"rule": (f"best mean {metric} over the campaigns; within "
                     f"{spec.promotion.min_improvement} counts as a tie and goes to the simpler "
                     "learner"),
            "winner": winner, "metric": metric, "runner_up": runner_up,
            "margin": means[winner] - means[runner_up] if runner_up else None,
            "ranking": [{"learner": n, "mean": means[n]} for n in ranking]}
