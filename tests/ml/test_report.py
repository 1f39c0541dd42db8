"""The back-test report reads like a report: the model card rendered as HTML, a summary on top."""

from __future__ import annotations

from ml.modeling.report import html_report, model_card
from ml.modeling.specs import get_spec

SPEC = get_spec("churn").with_candidate("xgboost")
STATS = {"roc_auc": {"mean": 0.85, "std": 0.01}, "ece": {"mean": 0.02, "std": 0.005}}
CARD = {
    "summary": {"xgboost": STATS, "logistic_regression": STATS,
                "champion": {**STATS, "roc_auc": {"mean": 0.80, "std": 0.01}}},
    "metrics": ["ece", "roc_auc"],
    "gains": {"logistic_regression": {"gain": 0.0, "low": -0.01, "high": 0.01},
              "champion": {"gain": 0.05, "low": 0.03, "high": 0.07}},
    "gap_closed": None, "oracle_note": "no eval.oracle_labels <script>alert(1)</script>",
    "lineage": {"data_window": "2024-01-01..2024-06-01", "data_fingerprint": "f" * 16,
                "git_sha": "a" * 40, "dbt_manifest_hash": "m" * 16, "spec_hash": "s" * 16},
    "rows": 1234, "sampled": False, "features": ["recency", "frequency"], "unavailable": [],
    "folds": 2, "top_features": ["recency"], "champion": {"version": "3", "comparable": True},
    "candidate": "xgboost", "selection": {}, "horizon_days": 90,
}


def test_report_renders_the_card_as_html_with_the_verdict_on_top(tmp_path):
    verdict = {"decision": "promote", "reason": "roc_auc improves by +0.0500"}
    page = html_report(SPEC, CARD, model_card(SPEC, CARD, verdict), [], verdict)
    summary = page[page.index("class='summary'"):page.index("</div>")]
    assert "<strong>Verdict: promote</strong>: roc_auc improves by +0.0500" in summary
    assert "roc_auc 0.8500 vs champion v3 0.8000" in summary
    assert "Gain over the champion +0.0500 (95% CI +0.0300 .. +0.0700)" in summary
    assert "<table>" in page and "<th>learner</th>" in page  # pipe tables became tables
    assert "<h1>churn: model card</h1>" in page  # headings, not literal '#'
    assert "**" not in page and "<pre>" not in page  # no raw markdown left
    assert "<script>" not in page and "&lt;script&gt;" in page  # text is escaped


def test_report_before_the_gate_says_the_verdict_is_pending():
    page = html_report(SPEC, {**CARD, "champion": None, "gains": {}}, "text", [])
    assert "Verdict: pending" in page and "no champion to compare with yet" in page
