"""The platform's main job, end to end, in-process: what `ml run` and `make demo` do.

Each stage is the real Airflow DAG run through ``dag.test()``; the DAG order is the one
the Assets give under the scheduler (features -> train_<model> -> ...).

A model that the data cannot train, or that has no champion, is a decision, not a
failure: its stage is skipped, the summary says why, and the rest of the run goes on.
A failed task (a dbt test, a bug) still stops the run.
"""

from __future__ import annotations

from collections import defaultdict

from ml.dbt import failed_nodes
from ml.ops.orchestration import DagRunFailed, DagRunReport, run_dag


class PipelineFailed(RuntimeError):
    pass


def _stage_seconds(report: DagRunReport) -> dict[str, float]:
    stages: dict[str, float] = defaultdict(float)
    for task in report.tasks:
        stages[f"{report.dag_id}.{task.task_id.split('.')[0].split('[')[0]}"] += task.seconds
    return dict(stages)


def _explain_dbt_failure(error: DagRunFailed) -> str:
    lines = [str(error).splitlines()[0]]
    for node in failed_nodes():
        count = f"{node.failures} failing rows" if node.failures is not None else node.status
        lines.append(f"  dbt {node.name}: {count}. {node.message}")
    lines.append(
        "Nothing downstream of the failure was rebuilt: the previous marts are unchanged. "
        "Fix or quarantine the offending raw rows (`ml import` quarantines them) and run again."
    )
    return "\n".join(lines)


def _task_log_tail(report: DagRunReport) -> str:
    """The error lines of the failed tasks' logs, so the CLI shows the cause, not just a name."""
    from ml.settings import get_settings

    logs = get_settings().airflow_home / "logs" / f"dag_id={report.dag_id}" / f"run_id={report.run_id}"
    lines = []
    for task_id in report.failed_tasks:
        for path in sorted(logs.glob(f"task_id={task_id}/**/attempt=*.log"))[-1:]:
            errors = [line for line in path.read_text(errors="replace").splitlines()
                      if '"level":"error"' in line or "Error" in line]
            lines.extend(errors[-3:])
    return "\n".join(lines)


def _run_stage(dag_id: str, conf: dict, stage_seconds: dict[str, float]) -> DagRunReport:
    try:
        report = run_dag(dag_id, conf=conf)
    except DagRunFailed as exc:
        raise PipelineFailed(f"{exc}\n{_task_log_tail(exc.report)}") from exc
    stage_seconds.update(_stage_seconds(report))
    return report


def _skipped(report: DagRunReport, task_id: str) -> bool:
    return any(t.task_id == task_id and t.state == "skipped" for t in report.tasks)


def _quiet_progress(stage: str, state: str, seconds: float | None = None) -> None:
    """The default progress callback: none (the CLI passes its live view)."""


def run_pipeline(features_conf: dict, train_conf: dict | None = None,
                 models: list[str] | None = None, allocate_conf: dict | None = None,
                 progress=_quiet_progress) -> dict:
    """Returns the marts, time per stage, each model's status, the campaign (None when it
    was not planned) and ``skipped``: {stage: why} for every stage that did not run.

    A horizon override in ``features_conf`` (a spec's ``horizon_var``, e.g.
    ``churn_horizon_days``) reaches that model's training too, so labels, baselines,
    oracle and card agree. ``progress(stage, "running" | "done", seconds)`` is called
    around every DAG run."""
    from ml.decisions.campaign import missing_churn_scores, read_targets, summary_of_latest
    from ml.lifecycle.ledger import read_ledger
    from ml.marts import mart_summary
    from ml.modeling.specs import load_specs
    from ml.ops.status import platform_status

    from ml.mmm.plan import media_mix_status

    stage_seconds: dict[str, float] = {}
    media_mix = None

    def stage(dag_id: str, conf: dict) -> DagRunReport:
        progress(dag_id, "running")
        report = _run_stage(dag_id, conf, stage_seconds)
        progress(dag_id, "done", report.seconds)
        return report

    progress("features", "running")
    try:
        features = run_dag("features", conf=features_conf)
    except DagRunFailed as exc:
        raise PipelineFailed(_explain_dbt_failure(exc)) from exc
    stage_seconds.update(_stage_seconds(features))
    progress("features", "done", features.seconds)

    specs = load_specs()
    untrained = []
    for name in models or list(specs):
        horizon = features_conf.get(specs[name].horizon_var or "")
        conf = {**(train_conf or {}), "horizon_days": horizon}
        if _skipped(stage(f"train_{name}", conf), "train"):
            untrained.append(name)  # the train task recorded why in the ledger
    status = platform_status()["models"]
    skipped = {f"train_{name}": status[name]["last_decision"]["reason"] for name in untrained}
    if not models:  # uplift from past campaigns (a recorded skip without them), before the plan
        uplift = stage("uplift", {"mode": (train_conf or {}).get("promotion_mode", "auto"),
                                  "folds": (train_conf or {}).get("folds")})
        if _skipped(uplift, "train"):
            skipped["uplift.train"] = read_ledger("uplift").iloc[-1]["reason"]
        elif _skipped(uplift, "serve"):
            skipped["uplift.serve"] = "uplift has no champion yet: the plan uses churn x save rate"
    if not models:  # the recommender: its own DAG (train, gate, serve), on the same marts
        recommend = stage("recommend", {"mode": (train_conf or {}).get("promotion_mode", "auto"),
                                        "folds": (train_conf or {}).get("folds")})
        for task_id in ("train", "serve"):
            if _skipped(recommend, task_id):
                skipped[f"recommend.{task_id}"] = "see the recommend DAG's log"
                break
        # Acquisition: the media-mix model and a budget plan (skips without raw.media_spend).
        media = stage("media_mix", {"mode": (train_conf or {}).get("promotion_mode", "auto")})
        for task_id in ("train", "plan"):
            if _skipped(media, task_id):
                skipped[f"media_mix.{task_id}"] = ("no media spend (raw.media_spend) or no "
                                                   "champion; see the media_mix DAG's log")
                break
        media_mix = media_mix_status()

    if not models:  # matured campaigns are read out before the plan takes their save rates
        if _skipped(stage("readout", {}), "find_matured"):
            skipped["readout"] = "no campaign's horizon has matured since the last readout"

    campaign = None
    if not any(info["champion"] for info in status.values()):
        skipped["score"] = "no model has a champion"
        skipped["allocate"] = missing_churn_scores()
    else:
        stage("score", {"model": "all"})
        if _skipped(stage("allocate", allocate_conf or {}), "plan_campaign"):
            skipped["allocate"] = missing_churn_scores()
        else:
            campaign = {**summary_of_latest(),
                        "top": read_targets().head(10).to_dict(orient="records")}
    return {"features": mart_summary(), "stage_seconds": stage_seconds,
            "models": status, "campaign": campaign, "skipped": skipped,
            "media_mix": media_mix}
