"""Train the recommender from its spec: back-test, champion re-fit, final fit, MLflow run,
registered challenger. The evidence has the shape the shared gate reads
(``backtest_summary.json``), so gate, ledger, approval and rollback are the other models'.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from ml import registry
from ml.modeling.report import gap_closed, html_report, model_card, pip_requirements
from ml.modeling.specs import ModelSpec, load_spec
from ml.recommend import backtest, data
from ml.recommend.backtest import CHAMPION
from ml.warehouse import get_warehouse

SPEC_PATH = Path(__file__).resolve().parent / "recommendations.yaml"
CARD_METRICS = ["recall_at_5", "recall_at_10", "recall_at_20", "ndcg_at_10", "map_at_10",
                "hit_rate_at_10", "recall_repeat_at_10", "recall_new_at_10", "coverage_at_10",
                "novelty_at_10", "popularity_bias_at_10"]


def get_ranking_spec(path: Path | None = None) -> ModelSpec:
    return load_spec(path or SPEC_PATH)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """The logged artifact (an MLflow pyfunc): a recommender fitted at one snapshot, with
    that snapshot's catalogue and histories, so serving ranks exactly what was evaluated.
    ``predict`` takes customer ids and returns their top-k (popularity for unknown ids)."""

    def __init__(self, recommender, k: int):
        self.recommender, self.k = recommender, k

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from ml.recommend.serving import rank_customers

        ids = model_input["customer_id"].astype(str).to_numpy(dtype=object)
        ranked = rank_customers(self.recommender, ids, self.k)
        return pd.DataFrame({"customer_id": np.repeat(ids, self.k),
                             "rank": np.tile(np.arange(1, self.k + 1), ids.size),
                             "product_id": ranked.items.ravel(), "score": ranked.scores.ravel()})


def _learner_specs(spec: ModelSpec) -> dict[str, tuple[str, dict]]:
    return {name: (learner.kind, learner.params) for name, learner in spec.learners.items()}


def train_ranking(spec: ModelSpec | None = None, folds: int | None = None) -> dict:
    """The whole training job for the ranking spec; returns a JSON-able summary."""
    spec = spec or get_ranking_spec()
    wh = get_warehouse()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    champion = registry.champion_recipe(spec.name)
    reference = {CHAMPION: (champion["kind"], champion["params"])} if champion else {}
    card = backtest.run(_learner_specs(spec), folds or spec.backtest.folds, spec.horizon_days,
                        spec.backtest.bootstrap_samples,
                        oracle_relation=spec.oracle.relation if spec.oracle else None,
                        warehouse=wh, reference=reference)
    seconds["backtest"] = time.perf_counter() - started
    spec = spec.with_candidate(card["candidate"])
    card["champion"] = ({"version": champion["version"], "comparable": True}
                        if champion else None)

    started = time.perf_counter()
    snapshots, labelled = data.snapshots(wh), data.labelled_snapshots(wh)
    final_snapshot = data.load_snapshot(snapshots[-1], wh)
    learner = spec.learners[spec.candidate]
    final = backtest.fit(learner.kind, learner.params, final_snapshot, labelled,
                         spec.horizon_days, wh)
    seconds["final_fit"] = time.perf_counter() - started
    importance = _importance(final)
    card.update({
        "metrics": CARD_METRICS, "gap_closed": gap_closed(card["summary"], spec, spec.baselines),
        "lineage": {"data_window": f"..{final_snapshot.as_of}",
                    "data_fingerprint": f"{final_snapshot.orders.nnz}-interactions",
                    "git_sha": _git_sha(), "dbt_manifest_hash": "n/a",
                    "spec_hash": spec.spec_hash},
        "rows": int(final_snapshot.orders.nnz), "sampled": False,
        "features": list(importance), "top_features": list(importance)[:20],
        "unavailable": [], "folds": len(card["cutoffs"]), "horizon_days": spec.horizon_days,
        "served_as_of": str(final_snapshot.as_of), "stage_seconds": seconds,
        "oracle_note": None if card["oracle"] else "no item oracle for these cutoffs",
    })
    with tempfile.TemporaryDirectory() as tmp:
        logged = _log(spec, card, RecommenderModel(final, spec.recommend.k), Path(tmp))
    return {**logged, "model": spec.name, "candidate": spec.candidate,
            "stage_seconds": seconds, "oracle": card["oracle"],
            "recall_at_10": {n: s["recall_at_10"]["mean"] for n, s in card["summary"].items()}}


def _importance(model) -> dict[str, float]:
    ranker = getattr(model, "ranker", None)
    if ranker is None:
        return {}
    gains = ranker.booster_.feature_importance("gain")
    names = model.feature_names()
    return dict(sorted(zip(names, map(float, gains), strict=True), key=lambda kv: -kv[1]))


def _git_sha() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _plot(card: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(card["summary"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for offset, k in enumerate((5, 10, 20)):
        ax.bar(np.arange(len(names)) + offset * 0.27,
               [card["summary"][n][f"recall_at_{k}"]["mean"] for n in names], 0.27,
               label=f"recall@{k}")
    ax.set_xticks(np.arange(len(names)) + 0.27, names, rotation=20)
    ax.legend()
    ax.set_title("Back-test recall (mean over global time cutoffs)")
    fig.tight_layout()
    path = out / "recall_at_k.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _log(spec: ModelSpec, card: dict, model: RecommenderModel, tmp: Path) -> dict:
    mlflow = registry.configure()
    markdown = model_card(spec, card)
    plot = _plot(card, tmp)
    (tmp / "report.html").write_text(html_report(spec, card, markdown, [plot]))
    (tmp / "model_card.md").write_text(markdown)
    (tmp / "backtest_summary.json").write_text(json.dumps(card, default=str, indent=1))
    learner = spec.learners[spec.candidate]
    (tmp / "recipe.json").write_text(json.dumps(
        {"kind": learner.kind, "params": learner.params, "features": card["features"]}))
    with mlflow.start_run(experiment_id=registry.experiment_id(spec.name),
                          run_name=f"train-{card['served_as_of']}") as run:
        mlflow.set_tags({**card["lineage"], "model": spec.name, "candidate": spec.candidate})
        mlflow.log_params({"task": spec.task, "candidate": spec.candidate,
                           "learners": ",".join(spec.learners), "folds": card["folds"],
                           "horizon_days": spec.horizon_days,
                           **{f"{spec.candidate}.{k}": v for k, v in learner.params.items()}})
        mlflow.log_metrics({f"{name}.{metric}.{stat}": value
                            for name, values in card["summary"].items()
                            for metric, stats in values.items() for stat, value in stats.items()
                            if value == value})
        mlflow.log_metrics({f"gain_vs_{b}.{k}": v for b, g in card["gains"].items()
                            for k, v in g.items() if v == v})
        mlflow.log_artifact(str(plot), artifact_path="plots")
        for name in ("report.html", "model_card.md"):
            mlflow.log_artifact(str(tmp / name), artifact_path="report")
        for name in ("backtest_summary.json", "recipe.json"):
            mlflow.log_artifact(str(tmp / name))
        info = mlflow.pyfunc.log_model(
            name="model", python_model=model, registered_model_name=spec.name,
            pip_requirements=[*pip_requirements("lightgbm"), "implicit"])
    version = str(info.registered_model_version)
    registry.set_alias(spec.name, registry.CHALLENGER, version)
    registry.describe_version(spec.name, version, markdown)
    return {"run_id": run.info.run_id, "version": version}



def train_and_gate(mode: str = "auto", folds: int | None = None) -> dict:
    """Train, run the shared gate on the new version, then act on the verdict like the
    other models: ``auto`` promotes a passing challenger, ``manual`` leaves it for
    ``ml promote`` / the approval step, ``dry_run`` only records the decision."""
    from ml.lifecycle.gate import evaluate_version
    from ml.lifecycle.promotion import apply_verdict

    spec = get_ranking_spec()
    trained = train_ranking(spec, folds=folds)
    verdict = evaluate_version(spec.name, trained["version"], spec=spec)
    decision, moved = apply_verdict(spec.name, trained["version"], trained["run_id"], verdict,
                                    mode)
    return {**trained, "decision": decision, "reason": verdict["reason"], "promotion": moved}
