"""Train the uplift model from its spec: back-test by campaign, champion re-fit, final fit,
MLflow run, registered challenger; then the shared gate, ledger and promotion, exactly as
``ml.recommend.train`` does (``backtest_summary.json`` has the shape the gate reads)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import registry
from ml.modeling.report import gap_closed, html_report, model_card, pip_requirements
from ml.modeling.specs import UPLIFT_METRICS, ModelSpec, load_spec
from ml.uplift import backtest
from ml.uplift.backtest import CHAMPION, ORACLE
from ml.uplift.data import UpliftSet, load_uplift_set, true_effects
from ml.uplift.learners import CalibratedUplift, build_uplift_learner, calibration_slope

SPEC_PATH = Path(__file__).resolve().parent / "uplift.yaml"
MODEL_NAME = "uplift"
BASELINE_KINDS = ("churn_rank", "random_rank")  # the oracle gap is measured from these


def get_uplift_spec(path: Path | None = None) -> ModelSpec:
    return load_spec(path or SPEC_PATH)


def train_uplift(spec: ModelSpec | None = None, folds: int | None = None) -> dict:
    """The whole training job; returns a JSON-able summary. Raises UpliftNotApplicable
    (a recorded skip) when the data has no campaigns to learn from."""
    spec = spec or get_uplift_spec()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    data = load_uplift_set(spec)
    champion = registry.champion_recipe(spec.name)
    learners = {name: (learner.kind, learner.params) for name, learner in spec.learners.items()}
    if champion:
        learners[CHAMPION] = (champion["kind"], champion["params"])
    effects = true_effects(spec)
    evidence = backtest.run(spec, data, learners, folds or spec.backtest.folds, effects)
    seconds["backtest"] = time.perf_counter() - started
    spec = spec.with_candidate(evidence["candidate"])

    started = time.perf_counter()
    learner = spec.learners[spec.candidate]
    predictions = evidence["predictions"]
    slope = calibration_slope(predictions["y"], predictions["treated"],
                              predictions[spec.candidate], predictions["fold"])
    final = CalibratedUplift(build_uplift_learner(learner.kind, learner.params, data.numeric,
                                                  data.categorical, spec.horizon_days),
                             spec.uplift.channel_column, slope)
    y = data.frame[spec.columns.label].to_numpy(dtype=float)
    final.fit(data.frame[data.features], data.treated, y)
    seconds["final_fit"] = time.perf_counter() - started
    as_of = data.frame[spec.columns.as_of]
    summary = evidence["summary"]
    card = {
        "summary": summary, "metrics": list(UPLIFT_METRICS), "gains": evidence["gains"],
        "candidate": spec.candidate, "selection": evidence["selection"],
        "champion": {"version": champion["version"], "comparable": True} if champion else None,
        "gap_closed": gap_closed(summary, spec, [b for b in spec.baselines if spec.learners[
            b].kind in BASELINE_KINDS]),
        "lineage": {"data_window": f"{as_of.min():%Y-%m-%d}..{as_of.max():%Y-%m-%d}",
                    "data_fingerprint": data.fingerprint, "git_sha": _git_sha(),
                    "dbt_manifest_hash": "n/a", "spec_hash": spec.spec_hash},
        "rows": len(data.frame), "sampled": False, "features": data.features,
        "numeric": data.numeric, "categorical": data.categorical,
        "unavailable": data.unavailable, "top_features": [], "folds": len(evidence["campaigns"]),
        "campaigns": evidence["campaigns"], "horizon_days": spec.horizon_days,
        "treated_share": float(data.treated.mean()),
        "channel_mix": _channel_mix(spec, data),
        # what the plan spends on: channel effects measured on the training campaigns plus
        # the model's heterogeneity scaled by its out-of-time calibration slope
        "calibration": {"slope": slope, "pooled_effect": final.pooled_effect_,
                        "channel_effect": final.channel_effect_},
        "oracle_note": None if evidence["oracle"] else "no true effects for these campaigns "
                                                       "(real data): the ceiling is unknown",
        "stage_seconds": seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        logged = _log(spec, card, final, data, evidence, Path(tmp))
    return {**logged, "model": spec.name, "candidate": spec.candidate, "stage_seconds": seconds,
            "oracle": evidence["oracle"], "campaigns": len(evidence["campaigns"]),
            spec.primary_metric: {n: s[spec.primary_metric]["mean"] for n, s in summary.items()}}


def _channel_mix(spec: ModelSpec, data: UpliftSet) -> dict[str, int]:
    """Treated customers per channel in the training campaigns."""
    channels = data.frame[spec.uplift.channel_column].astype(str).to_numpy()
    names, counts = np.unique(channels[data.treated], return_counts=True)
    return dict(zip(names.tolist(), counts.astype(int).tolist(), strict=True))


def _git_sha() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _plots(spec: ModelSpec, evidence: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.uplift.metrics import qini_curve

    predictions = evidence["predictions"]
    latest = predictions[predictions["fold"] == predictions["fold"].max()]
    names = [c for c in (*spec.learners, CHAMPION, ORACLE) if c in latest]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        k, q = qini_curve(latest["y"], latest["treated"], latest[name])
        ax.plot(k / k[-1], q, label=name, lw=2 if name == spec.candidate else 1)
    ax.plot([0, 1], [0, q[-1]], "k:", lw=0.8, label="random")
    ax.set(xlabel="share of customers targeted", ylabel="incremental customers retained",
           title=f"Qini curves, campaign {latest['campaign'].iloc[0]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    qini_path = out / "qini_latest_campaign.png"
    fig.savefig(qini_path, dpi=90)
    plt.close(fig)

    fold_metrics = evidence["fold_metrics"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, part in fold_metrics[fold_metrics.metric == spec.primary_metric].groupby("learner"):
        ax.plot(part["as_of"], part["value"], marker="o", label=name)
    ax.axhline(0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="campaign start", ylabel=spec.primary_metric, title="Qini per campaign")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    per_fold = out / "metric_per_campaign.png"
    fig.savefig(per_fold, dpi=90)
    plt.close(fig)
    return [qini_path, per_fold]


def _log(spec: ModelSpec, card: dict, model, data: UpliftSet, evidence: dict,
         tmp: Path) -> dict:
    from mlflow.models import infer_signature

    mlflow = registry.configure()
    markdown = model_card(spec, card)
    plots = _plots(spec, evidence, tmp)
    (tmp / "report.html").write_text(html_report(spec, card, markdown, plots))
    (tmp / "model_card.md").write_text(markdown)
    (tmp / "backtest_summary.json").write_text(json.dumps(card, default=str, indent=1))
    learner = spec.learners[spec.candidate]
    (tmp / "recipe.json").write_text(json.dumps(
        {"kind": learner.kind, "params": learner.params, "features": data.features,
         "numeric": data.numeric, "categorical": data.categorical}))
    evidence["predictions"].to_parquet(tmp / "backtest_predictions.parquet", index=False)
    with mlflow.start_run(experiment_id=registry.experiment_id(spec.name),
                          run_name=f"train-{card['lineage']['data_window']}") as run:
        mlflow.set_tags({**card["lineage"], "model": spec.name, "candidate": spec.candidate})
        mlflow.log_params({"task": spec.task, "training_set": spec.training_set,
                           "candidate": spec.candidate, "learners": ",".join(spec.learners),
                           "folds": card["folds"], "horizon_days": spec.horizon_days,
                           "training_rows": card["rows"], "n_features": len(data.features),
                           "capacity_share": spec.uplift.capacity_share})
        mlflow.log_metrics({"calibration.slope": card["calibration"]["slope"],
                            **{f"calibration.effect.{c}": e for c, e in
                               card["calibration"]["channel_effect"].items()}})
        mlflow.log_metrics({f"{name}.{metric}.{stat}": value
                            for name, values in card["summary"].items()
                            for metric, stats in values.items() for stat, value in stats.items()
                            if value == value})
        mlflow.log_metrics({f"gain_vs_{b}.{k}": v for b, g in card["gains"].items()
                            for k, v in g.items() if k in ("gain", "low", "high") and v == v})
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="plots")
        for name in ("report.html", "model_card.md"):
            mlflow.log_artifact(str(tmp / name), artifact_path="report")
        for name in ("backtest_summary.json", "recipe.json", "backtest_predictions.parquet"):
            mlflow.log_artifact(str(tmp / name))
        example = data.frame[data.features].head(5)
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle",
            signature=infer_signature(example, model.predict(example)), input_example=example,
            pip_requirements=pip_requirements(), registered_model_name=spec.name)
    version = str(info.registered_model_version)
    registry.set_alias(spec.name, registry.CHALLENGER, version)
    candidate = card["summary"][spec.candidate]
    registry.tag_version(spec.name, version, {
        **card["lineage"], "run_id": run.info.run_id,
        "backtest_summary": ", ".join(f"{m}={candidate[m]['mean']:.4f}±{candidate[m]['std']:.4f}"
                                      for m in UPLIFT_METRICS if m in candidate),
        "gate_verdict": "pending"})
    registry.describe_version(spec.name, version, markdown)
    return {"run_id": run.info.run_id, "version": version, "summary": card["summary"],
            "gains": card["gains"], "gap_closed": card["gap_closed"]}


def train_and_gate(mode: str = "auto", folds: int | None = None) -> dict:
    """Train, run the shared gate on the new version, then act on the verdict like the
    other models: ``auto`` promotes a passing challenger, ``manual`` leaves it for
    ``ml promote`` / the approval step, ``dry_run`` only records the decision."""
    from ml.lifecycle.gate import evaluate_version
    from ml.lifecycle.promotion import apply_verdict

    spec = get_uplift_spec()
    trained = train_uplift(spec, folds=folds)
    verdict = evaluate_version(spec.name, trained["version"], spec=spec)
    decision, moved = apply_verdict(spec.name, trained["version"], trained["run_id"], verdict,
                                    mode)
    return {**trained, "decision": decision, "reason": verdict["reason"], "promotion": moved}


def record_skip(reason: str, mode: str = "auto") -> None:
    """A data set that cannot train uplift (no campaigns) leaves a ``skipped`` ledger row,
    as every model's training DAG does, where ``ml status`` and ``ml run`` read it."""
    from ml.lifecycle.ledger import append_ledger, ledger_row

    champion = registry.version_by_alias(MODEL_NAME, registry.CHAMPION)
    append_ledger(ledger_row(MODEL_NAME, str(champion.version) if champion else None, None,
                             "skipped", mode, reason, "train"))
