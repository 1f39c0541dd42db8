"""Batch scoring with the champion.

Shards read the scoring population in Arrow record batches (bounded memory), predict
with the champion's whole pipeline and write Parquet files; ``publish`` then replaces the
(model, as_of) slice of ``ml.scores`` in one transaction, computing deciles over the
whole population. A run killed before publish leaves the previous scores untouched; a
re-run replaces the slice, never duplicates it.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml import registry
from ml.settings import ML_SCHEMA, get_settings
from ml.specs import ModelSpec, get_spec
from ml.training_data import model_frame
from ml.warehouse import Warehouse, get_warehouse, split_name

log = logging.getLogger(__name__)

SCORES_TABLE = "scores"
PSI_WARNING = 0.2
BATCH_ROWS = 100_000
# One row per customer (and segment); deciles over the whole population of a segment.
SCORES_SQL = (
    "SELECT CAST(customer_id AS STRING) AS customer_id, CAST(? AS DATE) AS as_of_date, "
    "CAST(? AS STRING) AS model_name, CAST(? AS STRING) AS model_version, "
    "CAST(segment AS STRING) AS segment, score, "
    "ntile(10) OVER (PARTITION BY segment ORDER BY score DESC, customer_id) AS decile, "
    "? AS scored_at FROM {shards}"
)


class ScoringError(RuntimeError):
    """Scoring cannot run; previous scores are untouched."""


def champion_of(model: str):
    champion = registry.version_by_alias(model, registry.CHAMPION)
    if champion is None:
        raise ScoringError(f"model {model} has no champion yet: run the train_{model} DAG "
                           f"(or `ml run`), or promote a version with `ml promote {model} VERSION`")
    return champion


def scoring_as_of(spec: ModelSpec, as_of: str | date | None) -> date:
    """The requested as-of date, or the scoring snapshot (the day after the data's last day)."""
    wh = get_warehouse()
    if as_of is None:
        latest = wh.scalar(f"SELECT max(as_of_date) FROM "
                           f"{wh.relation('marts', 'snapshot_calendar')} WHERE is_scoring_snapshot",
                           stage="scoring snapshot")
        if latest is None:
            raise ScoringError("marts.snapshot_calendar has no scoring snapshot: run features")
        return latest
    wanted = date.fromisoformat(str(as_of))
    found = wh.scalar(f"SELECT count(*) FROM {wh.relation(*split_name(spec.scoring.relation))} "
                      "WHERE as_of_date = ?", [wanted], stage="scoring population size")
    if not found:
        raise ScoringError(f"{spec.scoring.relation} has no rows for as_of_date {wanted}; "
                           "pick a snapshot date from marts.snapshot_calendar")
    return wanted


def _input_columns(model_uri: str) -> tuple[list[str], list[str]]:
    """Numeric and categorical inputs from the logged signature (what the model was trained on)."""
    import mlflow

    inputs = mlflow.models.get_model_info(model_uri).signature.inputs.inputs
    numeric = [c.name for c in inputs if c.type.name == "double"]
    return numeric, [c.name for c in inputs if c.name not in numeric]


def _population_sql(wh: Warehouse, spec: ModelSpec, columns: list[str], shard: int,
                    shards: int) -> str:
    keys = [spec.scoring.id_column] + ([spec.scoring.segment_column]
                                       if spec.scoring.segment_column else [])
    cols = ", ".join(map(wh.quote, dict.fromkeys([*keys, *columns])))
    where = "as_of_date = ?"
    if spec.scoring.population_column:
        where += f" AND {wh.quote(spec.scoring.population_column)}"
    where += f" AND {wh.shard_predicate(spec.scoring.id_column, shards, shard)}"
    return f"SELECT {cols} FROM {wh.relation(*split_name(spec.scoring.relation))} WHERE {where}"


def staging_dir(model: str, as_of: date) -> Path:
    return get_settings().local_dir / "scoring" / model / as_of.isoformat()


def score_shard(model: str, as_of: str, shard: int, shards: int) -> dict:
    """Score one shard of the population into a Parquet file; touches no warehouse table."""
    import mlflow

    spec = get_spec(model)
    as_of_date = date.fromisoformat(str(as_of))
    champion = champion_of(model)
    registry.configure()
    uri = f"models:/{model}/{champion.version}"  # pinned: the alias may move mid-run
    pipeline = mlflow.sklearn.load_model(uri)
    numeric, categorical = _input_columns(uri)
    out_dir = staging_dir(model, as_of_date)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"shard-{shard:04d}-of-{shards:04d}.parquet"
    rows = 0
    wh = get_warehouse()
    available = set(wh.columns(*split_name(spec.scoring.relation)))
    missing = [c for c in numeric + categorical if c not in available]
    if missing:
        raise ScoringError(
            f"champion {model} v{champion.version} expects column(s) {missing} that "
            f"{spec.scoring.relation} does not have (features changed since it was trained); "
            f"retrain with the train_{model} DAG before scoring")
    population = _population_sql(wh, spec, numeric + categorical, shard, shards)
    with closing(wh.read_batches(population, [as_of_date], BATCH_ROWS,
                                 stage=f"{model} population, shard {shard}")) as reader:
        writer = None
        try:
            for batch in reader:
                frame = batch.to_pandas()
                X = model_frame(frame, numeric, categorical)
                score = (pipeline.predict_proba(X)[:, 1] if spec.task == "binary"
                         else pipeline.predict(X))
                segment = (frame[spec.scoring.segment_column].astype(str)
                           if spec.scoring.segment_column else pd.Series([None] * len(frame)))
                table = pa.table({"customer_id": frame[spec.scoring.id_column].astype(str),
                                  "segment": pa.array(segment, type=pa.string()),
                                  "score": np.asarray(score, dtype="float64")})
                writer = writer or pq.ParquetWriter(target.with_suffix(".tmp"), table.schema)
                writer.write_table(table)
                rows += len(frame)
        finally:
            if writer is not None:
                writer.close()
    if writer is not None:
        target.with_suffix(".tmp").rename(target)  # a shard file exists only when complete
    return {"shard": shard, "rows": rows, "version": str(champion.version)}


def publish(model: str, as_of: str, shards: list[dict]) -> dict:
    """Replace the (model, as_of) slice of ml.scores with the shard files, atomically."""
    spec = get_spec(model)
    as_of_date = date.fromisoformat(str(as_of))
    versions = {s["version"] for s in shards}
    if len(versions) != 1:
        raise ScoringError(f"{model}: shards were scored by different versions {sorted(versions)} "
                           "(the champion moved mid-run); run scoring again")
    version = versions.pop()
    champion = registry.client().get_model_version(model, version)
    files = sorted(staging_dir(model, as_of_date).glob(f"shard-*-of-{len(shards):04d}.parquet"))
    if not files:
        raise ScoringError(f"{model}: the population at {as_of_date} is empty (no rows in "
                           f"{spec.scoring.relation} with {spec.scoring.population_column}); "
                           "previous scores are unchanged")
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    rows = get_warehouse().replace_rows(
        ML_SCHEMA, SCORES_TABLE, SCORES_SQL, [as_of_date, model, version, scored_at],
        key={"model_name": model, "as_of_date": as_of_date}, sources={"shards": files},
        partition_by="as_of_date", cluster_by=["model_name", "customer_id"])
    shutil.rmtree(staging_dir(model, as_of_date), ignore_errors=True)
    psi = score_drift(model, champion, as_of_date)
    return {"model": model, "version": version, "as_of": str(as_of_date),
            "rows": rows, "psi": psi}


def score_drift(model: str, champion, as_of: date) -> float | None:
    """PSI of today's scores against the champion's back-test predictions; warn above 0.2."""
    from ml.metrics import population_stability_index

    spec = get_spec(model)
    try:
        import mlflow

        path = mlflow.artifacts.download_artifacts(
            f"runs:/{champion.run_id}/backtest_predictions.parquet")
    except Exception:  # noqa: BLE001 - no back-test artifact, no drift check
        return None
    expected = pd.read_parquet(path, columns=[spec.candidate])[spec.candidate].to_numpy()
    wh = get_warehouse()
    actual = wh.read_arrow(f"SELECT score FROM {wh.relation(ML_SCHEMA, SCORES_TABLE)} WHERE "
                           "model_name = ? AND as_of_date = ?", [model, as_of],
                           stage=f"{model} scores for drift").column("score").to_numpy()
    psi = float(population_stability_index(expected, actual))
    if psi > PSI_WARNING:
        log.warning("%s v%s: score distribution shifted (PSI %.3f > %.2f) against its back-test",
                    model, champion.version, psi, PSI_WARNING)
    return psi


def score_model(model: str, as_of: str | None = None, shards: int = 1) -> dict:
    """All shards then publish, in one process (the CLI path; the DAG maps the shards)."""
    spec = get_spec(model)
    champion_of(model)
    as_of_date = scoring_as_of(spec, as_of)
    prepare_staging(model, as_of_date)
    results = [score_shard(model, as_of_date.isoformat(), shard, shards) for shard in range(shards)]
    return publish(model, as_of_date.isoformat(), results)


def prepare_staging(model: str, as_of: date) -> None:
    """Clear shard files left by an earlier, interrupted run."""
    shutil.rmtree(staging_dir(model, as_of), ignore_errors=True)


def read_scores(model: str, as_of: date | None = None) -> pd.DataFrame:
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, SCORES_TABLE):
        return pd.DataFrame()
    where, params = "model_name = ?", [model]
    if as_of:
        where, params = where + " AND as_of_date = ?", params + [as_of]
    return wh.read_arrow(f"SELECT * FROM {wh.relation(ML_SCHEMA, SCORES_TABLE)} WHERE {where}",
                         params, stage=f"{model} scores").to_pandas()


def plan_scoring(model: str, as_of: str | None, shards: int,
                 triggered_by: list[str] | None = None) -> list[dict]:
    """Shard jobs for the models to score: those whose champion Asset triggered the run,
    else the Param (``all`` = every model with a champion)."""
    from ml.assets import champion_asset
    from ml.specs import load_specs

    specs = load_specs()
    if triggered_by:
        names = [n for n in specs if champion_asset(n) in triggered_by]
    elif model == "all":
        names = [n for n in specs if registry.version_by_alias(n, registry.CHAMPION)]
    else:
        names = [model]
    if not names:
        raise ScoringError("no model has a champion yet: run a training DAG first")
    jobs = []
    for name in names:
        champion_of(name)
        as_of_date = scoring_as_of(specs[name], as_of)
        prepare_staging(name, as_of_date)
        jobs += [{"model": name, "as_of": as_of_date.isoformat(), "shard": k, "shards": shards}
                 for k in range(shards)]
    return jobs


def publish_all(results: list[dict]) -> list[dict]:
    by_model: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        by_model.setdefault((result["model"], result["as_of"]), []).append(result)
    return [publish(model, as_of, shards) for (model, as_of), shards in by_model.items()]
