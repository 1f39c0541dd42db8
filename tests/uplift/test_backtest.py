"""The back-test by campaign: folds learn only from campaigns matured before them, every
learner and the oracle are judged on the same customers, the gate's evidence is complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modeling.specs import Learner, load_spec
from ml.uplift import backtest
from ml.uplift.data import UpliftNotApplicable, UpliftSet
from tests.uplift.test_learners import CATEGORICAL, NUMERIC, SMALL, world

SPEC = load_spec(Path(__file__).resolve().parents[2] / "ml" / "uplift" / "uplift.yaml")
STARTS = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-08-01", "2024-10-01"])


def campaigns(sizes=(1500, 1500, 1500, 1500, 1500)):
    """Five campaigns, 90-day horizons: the August one starts before July's has matured."""
    frames, treated, effects = [], [], []
    for i, (start, n) in enumerate(zip(STARTS, sizes, strict=True)):
        X, t, y, effect = world(n, seed=20 + i)
        frames.append(X.assign(campaign=f"c{i}", customer_id=[f"u{i}_{k}" for k in range(n)],
                               as_of_date=start, retained=y,
                               label_matured_on=start + pd.Timedelta(days=90)))
        treated.append(t)
        effects.append(pd.DataFrame({"campaign": f"c{i}", "customer_id": frames[-1].customer_id,
                                     "effect": effect}))
    frame = pd.concat(frames, ignore_index=True)
    data = UpliftSet(frame=frame, numeric=NUMERIC, categorical=CATEGORICAL,
                     treated=np.concatenate(treated), source_rows=len(frame), fingerprint="x",
                     unavailable=[])
    return data, pd.concat(effects, ignore_index=True)


def spec_with(**learners):
    return SPEC.model_copy(update={"learners": {n: Learner(kind=k, params=p)
                                                for n, (k, p) in learners.items()}})


LEARNERS = {"t": ("t_learner", {"base": SMALL["base"]}), "churn": ("churn_rank", {}),
            "random": ("random_rank", {"seed": 1})}


def test_folds_train_only_on_campaigns_matured_before_them():
    data, _ = campaigns()
    plan = backtest.plan_campaign_folds(data, SPEC, folds=10)
    assert [f["campaign"] for f in plan] == ["c1", "c2", "c3", "c4"]  # c0 has no past
    trained_on = {f["campaign"]: set(data.frame["campaign"].iloc[f["train_rows"]]) for f in plan}
    assert trained_on == {"c1": {"c0"}, "c2": {"c0", "c1"}, "c3": {"c0", "c1"},
                          "c4": {"c0", "c1", "c2"}}  # c3 (Aug) had not matured by Oct
    assert [f["campaign"] for f in backtest.plan_campaign_folds(data, SPEC, folds=2)] == \
        ["c3", "c4"]


def test_run_judges_every_learner_and_the_oracle_on_the_same_campaigns():
    data, effects = campaigns()
    spec = spec_with(**LEARNERS)
    card = backtest.run(spec, data, LEARNERS, folds=2, effects=effects)
    assert card["oracle"] and set(card["summary"]) == {"t", "churn", "random", "oracle"}
    assert [c["campaign"] for c in card["campaigns"]] == ["c3", "c4"]
    qini = {n: s["qini"]["mean"] for n, s in card["summary"].items()}
    assert qini["oracle"] > qini["t"] > qini["churn"]
    assert card["candidate"] == "t" and set(card["gains"]) == {"churn", "random"}
    assert card["gains"]["churn"]["low"] > 0  # the effect model beats churn targeting
    predictions = card["predictions"]
    assert len(predictions) == 3000
    assert predictions[["t", "churn", "random", "oracle"]].notna().all().all()


def test_a_simpler_learner_within_the_threshold_wins_the_tie():
    summary = {"t": {"qini": {"mean": 0.050}}, "x": {"qini": {"mean": 0.053}},
               "random": {"qini": {"mean": 0.0}}}
    spec = spec_with(t=("t_learner", {}), x=("x_learner", {}), random=("random_rank", {}))
    assert backtest.choose_candidate(spec, summary)["winner"] == "t"  # 0.003 < 0.005
    summary["x"]["qini"]["mean"] = 0.07
    chosen = backtest.choose_candidate(spec, summary)
    assert chosen["winner"] == "x" and chosen["margin"] == pytest.approx(0.02)


def test_no_campaign_with_a_matured_past_is_a_skip_with_the_reason():
    data, _ = campaigns()
    first = data.frame["campaign"] == "c0"
    only_first = UpliftSet(frame=data.frame[first].reset_index(drop=True), numeric=NUMERIC,
                           categorical=CATEGORICAL, treated=data.treated[first.to_numpy()],
                           source_rows=int(first.sum()), fingerprint="x", unavailable=[])
    with pytest.raises(UpliftNotApplicable, match="1 campaign"):
        backtest.run(spec_with(**LEARNERS), only_first, LEARNERS, folds=2)
