"""What a training run leaves in MLflow: metrics, plots, an HTML report, the registered
model with lineage tags, and the model card as the version's description."""

from __future__ import annotations

import base64
import html
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ml import registry
from ml.modeling.backtest import BacktestResult
from ml.modeling.specs import ModelSpec
from ml.modeling.training_data import TrainingSet

PIP_PACKAGES = ("scikit-learn", "xgboost", "pandas", "numpy", "scipy", "pyarrow")
LEARNER_PACKAGES = {"lightgbm": ("lightgbm",), "catboost": ("catboost",),
                    "flaml": ("flaml", "lightgbm")}  # what loading the pipeline needs besides


def pip_requirements(kind: str | None = None) -> list[str]:
    """Pinned from this environment (MLflow's own inference takes ~30 s per model)."""
    packages = PIP_PACKAGES + LEARNER_PACKAGES.get(kind, ())
    return [f"{pkg}=={importlib.metadata.version(pkg)}" for pkg in packages] + [
        f"customer-ml-platform=={importlib.metadata.version('customer-ml-platform')}"]


def summary_table(result: BacktestResult) -> dict[str, dict[str, dict[str, float]]]:
    """{learner: {metric: {"mean", "std"}}} over the back-test folds."""
    out: dict = {}
    for row in result.summary().itertuples():
        out.setdefault(row.learner, {})[row.metric] = {
            "mean": float(row.mean), "std": 0.0 if pd.isna(row.std) else float(row.std)}
    return out


def gap_closed(summary: dict, spec: ModelSpec, baselines: list[str]) -> dict | None:
    """Share of the distance from the best baseline to the oracle that the model covers."""
    metric = spec.primary_metric
    if "oracle" not in summary or not baselines:
        return None
    best_name = max(baselines, key=lambda b: summary[b][metric]["mean"])
    best = summary[best_name][metric]["mean"]
    oracle = summary["oracle"][metric]["mean"]
    model = summary[spec.candidate][metric]["mean"]
    share = (model - best) / (oracle - best) if oracle > best else float("nan")
    return {"metric": metric, "best_baseline": best_name, "best_baseline_value": best,
            "oracle_value": oracle, "model_value": model, "share_closed": share}


# ---------------------------------------------------------------- plots
def _plots(spec: ModelSpec, result: BacktestResult, importance: pd.Series, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    preds = result.predictions
    columns = [c for c in preds.columns if c not in ("fold", "as_of", spec.columns.id, "y")]
    paths = []

    def save(fig, name):
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    y = preds["y"].to_numpy()
    if spec.task == "binary":
        fig, ax = plt.subplots(figsize=(5, 4))
        for c in columns:
            fpr, tpr, _ = roc_curve(y, preds[c])
            ax.plot(fpr, tpr, label=c)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (all folds)")
        ax.legend(fontsize=7)
        save(fig, "roc")
        fig, ax = plt.subplots(figsize=(5, 4))
        for c in columns:
            prec, rec, _ = precision_recall_curve(y, preds[c])
            ax.plot(rec, prec, label=c)
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (all folds)")
        ax.legend(fontsize=7)
        save(fig, "pr")
    fig, ax = plt.subplots(figsize=(5, 4))
    for c in columns:
        bins = pd.qcut(preds[c].rank(method="first"), 10, labels=False)
        grouped = pd.DataFrame({"p": preds[c], "y": y, "b": bins}).groupby("b").mean()
        ax.plot(grouped["p"], grouped["y"], marker="o", ms=3, label=c)
    lim = [0, max(float(np.nanmax(preds[columns].to_numpy())), float(y.max()))]
    ax.plot(lim, lim, "k:", lw=0.8)
    ax.set(xlabel="mean prediction (decile)", ylabel="mean outcome", title="Calibration")
    ax.legend(fontsize=7)
    save(fig, "calibration")
    fig, ax = plt.subplots(figsize=(5, 4))
    for c in columns:
        order = np.argsort(-preds[c].to_numpy(), kind="stable")
        gain = np.cumsum(y[order]) / max(y.sum(), 1e-12)
        ax.plot(np.arange(1, len(y) + 1) / len(y), gain, label=c)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="share of customers targeted", ylabel="share of outcome captured",
           title="Cumulative gain")
    ax.legend(fontsize=7)
    save(fig, "gain")
    if not importance.empty:
        top = importance.head(20)[::-1]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.barh(top.index, top.values)
        ax.set(xlabel="mean |SHAP| (log-odds)" if spec.task == "binary" else "mean |SHAP|",
               title="Feature importance")
        ax.tick_params(axis="y", labelsize=7)
        save(fig, "importance")
    fig, ax = plt.subplots(figsize=(5, 4))
    fm = result.fold_metrics[result.fold_metrics.metric == spec.primary_metric]
    for learner, part in fm.groupby("learner"):
        ax.plot(part["as_of"], part["value"], marker="o", label=learner)
    ax.set(xlabel="fold as-of date", ylabel=spec.primary_metric, title="Metric per fold")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    save(fig, "metric_per_fold")
    return paths


def shap_importance(model, X: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| per input feature from XGBoost's own contributions (pred_contribs)."""
    if not hasattr(model, "named_steps") or not hasattr(model.named_steps.get("model"), "get_booster"):
        return pd.Series(dtype=float)
    import xgboost as xgb

    prep, booster = model.named_steps["prep"], model.named_steps["model"].get_booster()
    sample = X.sample(min(len(X), 5000), random_state=0)
    contribs = booster.predict(xgb.DMatrix(prep.transform(sample)), pred_contribs=True)[:, :-1]
    names = prep.get_feature_names_out()
    per_column = pd.Series(np.abs(contribs).mean(axis=0), index=names)
    # one-hot columns back to their source feature
    source = {n: next((c for c in X.columns if n == c or n.startswith(f"{c}_")), n) for n in names}
    return per_column.groupby(source).sum().sort_values(ascending=False)


# ---------------------------------------------------------------- model card and report
def _metrics_markdown(summary: dict, metrics: list[str]) -> str:
    lines = ["| learner | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for learner, values in summary.items():
        cells = [f"{values[m]['mean']:.4f} ± {values[m]['std']:.4f}" if m in values else "–"
                 for m in metrics]
        lines.append(f"| {learner} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(spec: ModelSpec, card: dict, verdict: dict | None = None) -> str:
    summary, metrics = card["summary"], card["metrics"]
    gains = "\n".join(
        f"- vs **{b}**: {g['gain']:+.4f} (95% CI {g['low']:+.4f} .. {g['high']:+.4f})"
        for b, g in card["gains"].items()) or "- (no baselines)"
    gap = card.get("gap_closed")
    gap_text = (f"Oracle {gap['metric']} {gap['oracle_value']:.4f}; best baseline "
                f"({gap['best_baseline']}) {gap['best_baseline_value']:.4f}; model "
                f"{gap['model_value']:.4f}: **{gap['share_closed']:.0%} of the gap closed**."
                if gap else f"No oracle: {card.get('oracle_note') or 'the ceiling is unknown'}.")
    top = ", ".join(card["top_features"][:10]) or "n/a"
    selection = card.get("selection") or {}
    if selection.get("runner_up"):
        chosen = (f" Chosen by the back-test ({selection['rule']}): {spec.primary_metric} "
                  f"{summary[spec.candidate][spec.primary_metric]['mean']:.4f}, "
                  f"{selection['margin']:+.4f} over the runner-up `{selection['runner_up']}`.")
    else:
        chosen = ""
    verdict_text = (f"**{verdict['decision']}**: {verdict['reason']}" if verdict
                    else "pending: the promotion gate has not run yet")
    unavailable = ", ".join(card.get("unavailable", [])) or "none"
    cal = summary.get(spec.candidate, {})
    calibration = (f"ECE {cal['ece']['mean']:.4f}" if "ece" in cal else
                   "none: an individual effect is never observed, so effects are judged by "
                   "ranking (Qini, AUUC) on randomised campaigns" if spec.task == "uplift" else
                   f"decile calibration error {cal.get('calibration_error', {}).get('mean', float('nan')):.4f}")
    return f"""# {spec.name}: model card

**Purpose.** {spec.description}

**Population.** {spec.population_description}. **Label.** {spec.label_description}
(horizon {spec.horizon_days} days; only matured labels).

**Data window.** {card['lineage']['data_window']} ({card['rows']:,} training rows{', stratified sample' if card['sampled'] else ''}).
Lineage: data `{card['lineage']['data_fingerprint']}`, git `{card['lineage']['git_sha'][:10]}`,
dbt manifest `{card['lineage']['dbt_manifest_hash']}`, spec `{card['lineage']['spec_hash']}`.

**Learner.** `{spec.candidate}` ({spec.learners[spec.candidate].kind}) on {len(card['features'])} features.{chosen}
Features unavailable in this data (source table absent, or null in every training row): {unavailable}.

## Back-test ({card['folds']} out-of-time folds, mean ± std)
{_metrics_markdown(summary, metrics)}

Gain in {spec.primary_metric} over each baseline and the champion's recipe re-fitted on the
same folds (paired bootstrap):
{gains}

{gap_text}

**Calibration.** {calibration}. **Top features** (mean |SHAP|): {top}.

## Promotion gate
{verdict_text}

## Caveats
{UPLIFT_CAVEATS if spec.task == "uplift" else CAVEATS}"""


CAVEATS = """\
- Back-test folds are the latest matured snapshots; performance can drift as behaviour changes.
- Scores are for ranking and budgeting; check calibration before reading them as exact rates.
- Trained on observational data: a high churn score is not proof that contact will help
  (the campaign keeps a random control group to measure that).
"""
UPLIFT_CAVEATS = """\
- Learned from past randomised campaigns (treated vs control): effects are causal for the
  customers and channels those campaigns reached, and extrapolate to others.
- Back-test folds are the latest campaigns, each trained only on campaigns whose outcome
  was known before it started; a campaign has a few hundred customers, so metrics are noisy.
- A channel no past campaign used has no measured effect; the plan keeps a control group to
  keep measuring.
"""


def _headline(spec: ModelSpec, card: dict, verdict: dict | None) -> str:
    """The report's first lines: the verdict, challenger vs champion, the gain and its CI."""
    metric, summary = spec.primary_metric, card["summary"]
    lines = [f"**Verdict: {verdict['decision']}**: {verdict['reason']}" if verdict
             else "**Verdict: pending**: the promotion gate has not run yet."]
    challenger = summary[spec.candidate][metric]["mean"]
    champion, gain = card.get("champion"), card["gains"].get("champion")
    if champion and "champion" in summary:
        lines.append(f"Challenger `{spec.candidate}` {metric} {challenger:.4f} vs champion "
                     f"v{champion['version']} {summary['champion'][metric]['mean']:.4f} on the "
                     "same out-of-time folds.")
    else:
        lines.append(f"Challenger `{spec.candidate}` {metric} {challenger:.4f}; no champion to "
                     "compare with yet.")
    if gain:
        lines.append(f"Gain over the champion {gain['gain']:+.4f} "
                     f"(95% CI {gain['low']:+.4f} .. {gain['high']:+.4f}).")
    return "\n\n".join(lines)


def html_report(spec: ModelSpec, card: dict, markdown: str, plots: list[Path],
                verdict: dict | None = None) -> str:
    """The model card and its tables as HTML (markdown-it: raw HTML in the text is escaped),
    a summary on top, the plots inline: one self-contained file."""
    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark", {"html": False}).enable("table").render
    images = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)} "
            "back-test report</title><style>body{font-family:sans-serif;max-width:1100px;"
            "margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:1em 0}"
            "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
            "th:first-child,td:first-child{text-align:left}.summary{background:#f3f6fa;"
            "border-left:4px solid #3b6ea5;padding:.5em 1em}"
            "figure{display:inline-block;margin:.5em}img{max-width:500px}</style></head><body>"
            f"<h1>{html.escape(spec.name)}: back-test report</h1>"
            f"<div class='summary'>{render(_headline(spec, card, verdict))}</div>"
            f"{render(markdown)}<h2>Plots</h2>{images}</body></html>")


def refresh_report(spec: ModelSpec, card: dict, verdict: dict, run_id: str) -> None:
    """Re-render the run's report and model card with the gate's verdict (the training run
    wrote them before the gate ran)."""
    import tempfile

    mlflow = registry.configure()
    markdown = model_card(spec, card, verdict)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots",
                                                          dst_path=tmp))
        (Path(tmp) / "report.html").write_text(
            html_report(spec, card, markdown, sorted(folder.glob("*.png")), verdict))
        (Path(tmp) / "model_card.md").write_text(markdown)
        client = registry.client()
        for name in ("report.html", "model_card.md"):
            client.log_artifact(run_id, str(Path(tmp) / name), artifact_path="report")


def log_training_run(spec: ModelSpec, data: TrainingSet, result: BacktestResult, evidence: dict,
                     final_model, lineage: dict, tmp: Path) -> dict:
    from mlflow.models import infer_signature

    mlflow = registry.configure()
    summary = summary_table(result)
    metrics = sorted({m for v in summary.values() for m in v})
    X = data.frame[data.features]
    importance = shap_importance(final_model, X)
    card = {
        "summary": summary, "metrics": metrics, "gains": evidence["gains"],
        "gap_closed": gap_closed(summary, spec, spec.baselines), "lineage": lineage,
        "rows": len(data.frame), "sampled": data.sampled, "features": data.features,
        "unavailable": data.unavailable, "folds": int(result.predictions["fold"].nunique()),
        "top_features": list(importance.index[:20]), "champion": evidence["champion"],
        "candidate": spec.candidate, "selection": evidence["selection"],
        "horizon_days": spec.horizon_days, "oracle_note": evidence["oracle_note"],
    }
    markdown = model_card(spec, card)
    plots = _plots(spec, result, importance, tmp)
    (tmp / "report.html").write_text(html_report(spec, card, markdown, plots))
    (tmp / "model_card.md").write_text(markdown)
    (tmp / "backtest_summary.json").write_text(json.dumps(card, default=str, indent=1))
    learner = spec.learners[spec.candidate]
    (tmp / "recipe.json").write_text(json.dumps({
        "kind": learner.kind, "params": learner.params, "features": data.features,
        "tuning": learner.tuning.model_dump() if learner.tuning else None}))
    tuning = evidence.get("tuning") or {}
    (tmp / "tuning.json").write_text(json.dumps(tuning, default=str, indent=1))
    result.predictions.to_parquet(tmp / "backtest_predictions.parquet", index=False)

    with mlflow.start_run(experiment_id=registry.experiment_id(spec.name),
                          run_name=f"train-{lineage['data_window']}") as run:
        mlflow.set_tags({**lineage, "model": spec.name, "candidate": spec.candidate})
        mlflow.log_params({"task": spec.task, "training_set": spec.training_set,
                           "horizon_days": spec.horizon_days, "candidate": spec.candidate,
                           "learners": ",".join(spec.learners), "folds": card["folds"],
                           "training_rows": len(data.frame), "source_rows": data.source_rows,
                           "sampling": "stratified by as_of and label" if data.sampled else "none",
                           "n_features": len(data.features),
                           **{f"{spec.candidate}.{k}": v
                              for k, v in spec.learners[spec.candidate].params.items()}})
        mlflow.log_metrics({f"{learner}.{metric}.{stat}": value
                            for learner, values in summary.items()
                            for metric, stats in values.items() for stat, value in stats.items()})
        mlflow.log_metrics({f"gain_vs_{b}.{k}": v for b, g in evidence["gains"].items()
                            for k, v in g.items() if k in ("gain", "low", "high")})
        final_search = tuning.get(spec.candidate, {}).get("final")
        if final_search:  # the registered model's searched parameters and the search's size
            mlflow.log_params({f"{spec.candidate}.tuned.{k}": v
                               for k, v in final_search["best_params"].items()})
            mlflow.log_metrics({"tuning.trials": final_search["trials"],
                                "tuning.fold_trials": sum(
                                    f["trials"] for f in tuning[spec.candidate]["folds"])})
        for fold, part in result.fold_metrics.groupby("fold"):
            as_of = part["as_of"].iloc[0]
            with mlflow.start_run(run_name=f"fold-{fold}-{as_of:%Y-%m-%d}", nested=True,
                                  experiment_id=run.info.experiment_id):
                mlflow.log_param("as_of", f"{as_of:%Y-%m-%d}")
                mlflow.log_metrics({f"{r.learner}.{r.metric}": r.value for r in part.itertuples()})
        for path in [*plots, tmp / "report.html", tmp / "model_card.md"]:
            mlflow.log_artifact(str(path), artifact_path="report" if path.suffix != ".png" else "plots")
        for name in ("backtest_summary.json", "recipe.json", "tuning.json",
                     "backtest_predictions.parquet"):
            mlflow.log_artifact(str(tmp / name))
        example = X.head(5)
        info = mlflow.sklearn.log_model(
            final_model, name="model", serialization_format="cloudpickle",
            signature=infer_signature(example, final_model.predict_proba(example)[:, 1]
                                      if spec.task == "binary" else final_model.predict(example)),
            input_example=example, pip_requirements=pip_requirements(learner.kind),
            registered_model_name=spec.name)
        version = str(info.registered_model_version)
    registry.set_alias(spec.name, registry.CHALLENGER, version)
    candidate = summary[spec.candidate]
    registry.tag_version(spec.name, version, {
        **lineage, "run_id": run.info.run_id,
        "backtest_summary": ", ".join(f"{m}={candidate[m]['mean']:.4f}±{candidate[m]['std']:.4f}"
                                      for m in metrics if m in candidate),
        "gate_verdict": "pending"})
    registry.describe_version(spec.name, version, markdown)
    return {"run_id": run.info.run_id, "version": version, "summary": summary,
            "gains": evidence["gains"], "gap_closed": card["gap_closed"],
            "champion_at_training": evidence["champion"]}
