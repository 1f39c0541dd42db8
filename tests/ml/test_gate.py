"""Every branch of the promotion gate's rule (a pure function of back-test evidence)."""

from __future__ import annotations

import pytest

from ml.lifecycle.gate import decide
from ml.modeling.specs import get_spec

# roc_auc primary; guardrails ece 0.02, lift_share_of_max 0.05; floors auc .60, lift share .15
SPEC = get_spec("churn")
GOOD = {"roc_auc": 0.80, "ece": 0.02, "lift_top_decile": 3.0, "lift_share_of_max": 0.5}


def metrics(**overrides):
    return {**GOOD, **overrides}


CI_POSITIVE = {"gain": 0.02, "low": 0.01, "high": 0.03}
CI_STRADDLES = {"gain": 0.02, "low": -0.001, "high": 0.04}

CASES = [
    # (id, challenger, champion, gain CI, promote?, reason fragment)
    ("no champion, floors met", metrics(), None, None, True, "absolute floors met"),
    ("no champion, auc below floor", metrics(roc_auc=0.55), None, None, False,
     "roc_auc 0.5500 misses floor 0.6"),
    ("no champion, lift below floor", metrics(lift_share_of_max=0.1), None, None, False,
     "lift_share_of_max 0.1000 misses floor 0.15"),
    # a churn base rate of 0.82: lift 1.14 of an attainable 1.22 is a strong ranking
    ("no champion, high base rate", metrics(roc_auc=0.78, lift_top_decile=1.14,
                                            lift_share_of_max=0.14 / 0.22), None, None, True,
     "top-decile lift 1.140 of at most 1.220 at this base rate"),
    ("better, significant, guardrails hold", metrics(roc_auc=0.82), metrics(), CI_POSITIVE, True,
     "improves by +0.0200"),
    ("gain below threshold", metrics(roc_auc=0.801), metrics(), CI_POSITIVE, False,
     "below the threshold"),
    ("equal (second run on unchanged data)", metrics(), metrics(),
     {"gain": 0.0, "low": 0.0, "high": 0.0}, False, "below the threshold"),
    ("worse", metrics(roc_auc=0.78), metrics(), {"gain": -0.02, "low": -0.03, "high": -0.01},
     False, "below the threshold"),
    ("not significant", metrics(roc_auc=0.82), metrics(), CI_STRADDLES, False,
     "not significant"),
    ("no CI available", metrics(roc_auc=0.82), metrics(), None, False, "not significant"),
    ("calibration regresses", metrics(roc_auc=0.82, ece=0.05), metrics(), CI_POSITIVE, False,
     "guardrail ece regresses"),
    ("calibration within tolerance", metrics(roc_auc=0.82, ece=0.035), metrics(), CI_POSITIVE,
     True, "no guardrail regresses"),
    ("lift regresses", metrics(roc_auc=0.82, lift_share_of_max=0.44), metrics(), CI_POSITIVE,
     False, "guardrail lift_share_of_max regresses"),
    ("better on AUC, worse calibration beyond tolerance",
     metrics(roc_auc=0.85, ece=0.041), metrics(roc_auc=0.80, ece=0.02), CI_POSITIVE, False,
     "guardrail ece regresses: 0.0410 vs champion 0.0200, beyond tolerance 0.02"),
]


@pytest.mark.parametrize(("challenger", "champion", "ci", "promote", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gate(challenger, champion, ci, promote, reason):
    verdict = decide(SPEC, challenger, champion, ci)
    assert verdict.promote is promote
    assert reason in verdict.reason
    assert verdict.decision == ("promote" if promote else "reject")
    if champion is not None:
        assert verdict.champion_value == champion["roc_auc"]
        assert verdict.gain == pytest.approx(challenger["roc_auc"] - champion["roc_auc"])


def test_champion_not_comparable_is_never_promoted_automatically():
    verdict = decide(SPEC, metrics(roc_auc=0.9), None, None, champion_comparable=False)
    assert not verdict.promote
    assert "ml promote" in verdict.reason


def test_lower_is_better_primary_metric():
    spec = get_spec("revenue_per_click").model_copy(update={"primary_metric": "rmse",
                                                            "guardrails": {}})
    better = decide(spec, {"rmse": 9.0}, {"rmse": 10.0}, {"gain": 1.0, "low": 0.5, "high": 1.5})
    worse = decide(spec, {"rmse": 11.0}, {"rmse": 10.0}, {"gain": -1.0, "low": -1.5, "high": -0.5})
    assert better.promote and better.gain == pytest.approx(1.0)
    assert not worse.promote and worse.gain == pytest.approx(-1.0)
