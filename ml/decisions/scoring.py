"""Batch scoring with the champion.

Shards read the scoring population in Arrow record batches (bounded memory), predict
with the champion's whole pipeline and write Parquet files; ``publish`` then replaces the
(model, as_of) slice of ``ml.scores`` in one transaction, computing deciles over the
whole population. A run killed before publish leaves the previous scores untouched; a
re-run replaces the slice, never duplicates it.

Before any shard runs, ``check_feature_skew`` compares each of the champion's features
between its training set and the scoring population (null share, distinct values, PSI)
and stops the run when a feature that varies in training is absent or constant at
scoring: the model would score everyone as if that feature were unknown.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml import registry
from ml.faults import checkpoint
from ml.modeling.learners import predict
from ml.modeling.metrics import psi_of_counts
from ml.modeling.specs import ModelSpec, get_spec
from ml.modeling.training_data import model_frame
from ml.settings import ML_SCHEMA, get_settings
from ml.warehouse import Warehouse, get_warehouse, split_name

log = logging.getLogger(__name__)

SCORES_TABLE = "scores"
SCORE_RUNS_TABLE = "score_runs"  # one row per published slice: version, rows, PSI
PSI_WARNING = 0.2
FEATURE_PSI_WARNING = 0.25
PSI_BINS = 10
QUANTILE_SAMPLE_ROWS = 200_000  # training rows read to place a numeric feature's PSI bins
BATCH_ROWS = 250_000
# Shard files: no dictionary for the (unique) customer ids; default (snappy) compression,
# which every publish target (DuckDB, BigQuery load jobs) reads.
SHARD_PARQUET = {"use_dictionary": ["segment"]}
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


class FeatureSkewError(ScoringError):
    """A feature the champion learned from is absent or constant in the scoring population."""


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


def _population_filter(wh: Warehouse, spec: ModelSpec) -> str:
    """The scoring population of one as-of date (its one ``?`` parameter)."""
    where = "as_of_date = ?"
    if spec.scoring.population_column:
        where += f" AND {wh.quote(spec.scoring.population_column)}"
    return where


def _population_sql(wh: Warehouse, spec: ModelSpec, columns: list[str], shard: int,
                    shards: int) -> str:
    keys = [spec.scoring.id_column] + ([spec.scoring.segment_column]
                                       if spec.scoring.segment_column else [])
    cols = ", ".join(map(wh.quote, dict.fromkeys([*keys, *columns])))
    where = (f"{_population_filter(wh, spec)} AND "
             f"{wh.shard_predicate(spec.scoring.id_column, shards, shard)}")
    return f"SELECT {cols} FROM {wh.relation(*split_name(spec.scoring.relation))} WHERE {where}"


def _predict_threads() -> int:
    """Threads for prediction: ``ML_PREDICT_THREADS``, default every core. Unlike training
    (``ML_N_JOBS``), tree prediction is row-parallel, so threads pay off and leave every
    score bit-for-bit the same."""
    value = os.environ.get("ML_PREDICT_THREADS", "").strip()
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _use_predict_threads(model) -> None:
    """Give a loaded XGBoost estimator the prediction threads (training's setting is kept
    in the artifact and stays untouched)."""
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if hasattr(estimator, "get_booster") and hasattr(estimator, "n_jobs"):
        threads = _predict_threads()
        estimator.n_jobs = threads  # the DMatrix fallback path
        # both names: the booster keeps the alias n_jobs from training, which wins over nthread
        estimator.get_booster().set_param({"nthread": threads, "n_jobs": threads})


def _as_strings(column: pa.Array) -> pa.Array:
    """``Series.astype(str)`` of an Arrow column, always as Arrow ``string`` (a string
    column without nulls as it is)."""
    if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) \
            and not column.null_count:
        return column.cast(pa.string())
    return pa.array(column.to_pandas().astype(str), type=pa.string())


def _as_float64(column: pa.Array) -> np.ndarray:
    """A numeric input exactly as ``model_frame`` makes it (float64, NaN = unknown)."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return pd.to_numeric(column.to_pandas(), errors="coerce").astype("float64").to_numpy()


def _distinct_rows(batch: pa.RecordBatch, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of one representative per distinct combination of ``columns``, and for
    every row the index of its combination."""
    codes, combinations = [], 1
    for name in columns:
        encoded = pc.dictionary_encode(batch.column(name), null_encoding="encode")
        codes.append((encoded.indices.to_numpy(zero_copy_only=False), len(encoded.dictionary)))
        combinations *= len(encoded.dictionary)
    if combinations > max(4 * batch.num_rows, 1 << 16):  # too many to tabulate: sort
        _, first, inverse = np.unique(np.column_stack([c for c, _ in codes]), axis=0,
                                      return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    combined = np.zeros(batch.num_rows, dtype=np.int64)
    for code, size in codes:
        combined = combined * size + code
    row_of = np.empty(combinations, dtype=np.int64)
    row_of[combined] = np.arange(batch.num_rows)  # any row having that combination
    present = np.zeros(combinations, dtype=bool)
    present[combined] = True
    found = np.flatnonzero(present)
    index_of = np.empty(combinations, dtype=np.int64)
    index_of[found] = np.arange(found.size)
    return row_of[found], index_of[combined]


def _column_plan(prep: ColumnTransformer, numeric: list[str],
                 categorical: list[str]) -> list[tuple[str, object, list[str]]] | None:
    """How to compute each block of a fitted ColumnTransformer straight from Arrow:
    ``raw`` (numeric passthrough), ``numeric`` (transform the float matrix), ``distinct``
    (transform each distinct categorical combination once). None if unsupported."""
    if getattr(prep, "_sklearn_output_config", {}).get("transform", "default") != "default":
        return None
    plan = []
    for _, transformer, cols in prep.transformers_:
        if isinstance(cols, str) or not all(isinstance(c, str) for c in cols):
            return None
        cols = list(cols)
        if transformer == "drop" or not cols:
            continue
        passthrough = transformer == "passthrough" or (
            isinstance(transformer, FunctionTransformer) and transformer.func is None)
        if all(c in numeric for c in cols):
            plan.append(("raw" if passthrough else "numeric", transformer, cols))
        elif all(c in categorical for c in cols) and not passthrough:
            plan.append(("distinct", transformer, cols))
        else:
            return None
    return plan or None


def _plan_features(plan: list, batch: pa.RecordBatch, order: str = "C") -> np.ndarray:
    """The ColumnTransformer's output for an Arrow batch, without a pandas round trip of
    the batch: same blocks, same order, same values. ``order="F"`` (column-major) is
    cheaper to fill, for estimators whose results do not depend on the layout."""
    n, blocks = batch.num_rows, []  # (columns of n values) or (distinct rows, row -> distinct)
    for kind, transformer, cols in plan:
        if kind == "distinct":
            first, inverse = _distinct_rows(batch, cols)
            few = model_frame(batch.select(cols).take(pa.array(first)).to_pandas(), [], cols)
            block = transformer.transform(few)
            if not isinstance(block, np.ndarray):
                raise TypeError("sparse or frame output")
            blocks.append((block, inverse))
        else:
            values = [_as_float64(batch.column(name)) for name in cols]
            if kind == "numeric":
                frame = pd.DataFrame(dict(zip(cols, values, strict=True)), columns=cols)
                block = transformer.transform(frame)
                if not isinstance(block, np.ndarray):
                    raise TypeError("sparse or frame output")
                values = list(block.T)
            blocks.append((values, None))
    dtype = np.result_type(*[b.dtype if rows is not None else b[0].dtype for b, rows in blocks])
    X = np.empty((n, sum(b.shape[1] if rows is not None else len(b) for b, rows in blocks)),
                 dtype=dtype, order=order)
    at = 0
    for block, rows in blocks:
        for column in (block.T if rows is not None else block):
            X[:, at] = column if rows is None else column[rows]
            at += 1
    return X


def _batch_scorer(model, task: str, numeric: list[str],
                  categorical: list[str]) -> Callable[[pa.RecordBatch], np.ndarray]:
    """Score Arrow batches with the model. A pipeline starting with a ColumnTransformer
    gets its features built straight from Arrow (categorical encoders run once per
    distinct value combination), then its remaining steps as usual; the first batch is
    checked against the pipeline's own transform and any difference falls back to the
    pandas path. Scores equal ``model.predict_proba`` / ``predict`` either way."""

    def through_pandas(batch: pa.RecordBatch) -> np.ndarray:
        return predict(model, model_frame(batch.to_pandas(), numeric, categorical), task)

    plan = None
    if (isinstance(model, Pipeline) and len(model.steps) > 1
            and isinstance(model.steps[0][1], ColumnTransformer)):
        plan = _column_plan(model.steps[0][1], numeric, categorical)
    if plan is None:
        return through_pandas
    prep, rest = model.steps[0][1], model[1:]
    # Trees read each value on its own, so the layout cannot change a score; a linear
    # model's BLAS dot product may round differently, so it gets hstack's row-major layout.
    order = "F" if hasattr(model.steps[-1][1], "get_booster") else "C"
    state = {"checked": False}

    def direct(batch: pa.RecordBatch) -> np.ndarray:
        if not state["checked"]:
            sample = batch.slice(0, 4096)
            fast = _plan_features(plan, sample)
            slow = prep.transform(model_frame(sample.to_pandas(), numeric, categorical))
            if not (isinstance(slow, np.ndarray) and slow.dtype == fast.dtype
                    and np.array_equal(fast, slow, equal_nan=True)):
                log.warning("scoring: Arrow features differ from the pipeline's own; "
                            "using the pandas path")
                plan.clear()
            state["checked"] = True
        if not plan:
            return through_pandas(batch)
        return predict(rest, _plan_features(plan, batch, order), task)

    return direct


def _named_as(batches: Iterator[pa.RecordBatch], names: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches with the model's column names spelled as it was trained. Column names are
    case-insensitive on BigQuery, and bqemulator lower-cases them in some query shapes
    (any using FARM_FINGERPRINT, i.e. the shard predicate)."""
    by_lower = {name.lower(): name for name in names}
    try:
        for batch in batches:
            wanted = [n if n in names else by_lower.get(n.lower(), n) for n in batch.schema.names]
            yield batch if wanted == batch.schema.names else batch.rename_columns(wanted)
    finally:
        batches.close()


def staging_dir(model: str, as_of: date) -> Path:
    """Where shards leave their Parquet files for ``publish``. With workers on several
    machines, SCORING_STAGING_DIR must be a directory they all mount."""
    root = os.environ.get("SCORING_STAGING_DIR")
    base = Path(root).expanduser() if root else get_settings().local_dir / "scoring"
    return base / model / as_of.isoformat()


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
    _use_predict_threads(pipeline)
    scorer = _batch_scorer(pipeline, spec.task, numeric, categorical)
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
    batches = wh.read_batches(population, [as_of_date], BATCH_ROWS,
                              stage=f"{model} population, shard {shard}")
    with closing(_named_as(batches, numeric + categorical)) as reader:
        writer = None
        try:
            for batch in reader:
                if not batch.num_rows:
                    continue
                score = scorer(batch)
                table = pa.table({
                    "customer_id": _as_strings(batch.column(spec.scoring.id_column)),
                    "segment": (_as_strings(batch.column(spec.scoring.segment_column))
                                if spec.scoring.segment_column
                                else pa.nulls(batch.num_rows, pa.string())),
                    "score": np.asarray(score, dtype="float64")})
                writer = writer or pq.ParquetWriter(target.with_suffix(".tmp"), table.schema,
                                                    **SHARD_PARQUET)
                writer.write_table(table)
                rows += batch.num_rows
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
    if not sum(s["rows"] for s in shards):
        raise ScoringError(f"{model}: the population at {as_of_date} is empty (no rows in "
                           f"{spec.scoring.relation} with {spec.scoring.population_column}); "
                           "previous scores are unchanged")
    staged = staging_dir(model, as_of_date)
    files = sorted(staged.glob(f"shard-*-of-{len(shards):04d}.parquet"))
    expected = sum(1 for s in shards if s["rows"])
    if len(files) != expected:
        raise ScoringError(f"{model}: {expected} shard file(s) expected in {staged}, found "
                           f"{len(files)}: shards and publish must see the same directory "
                           "(set SCORING_STAGING_DIR to a volume every worker mounts); "
                           "previous scores are unchanged")
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    rows = get_warehouse().replace_rows(
        ML_SCHEMA, SCORES_TABLE, SCORES_SQL, [as_of_date, model, version, scored_at],
        key={"model_name": model, "as_of_date": as_of_date}, sources={"shards": files},
        partition_by="as_of_date", cluster_by=["model_name", "customer_id"])
    shutil.rmtree(staging_dir(model, as_of_date), ignore_errors=True)
    psi = score_drift(model, champion, as_of_date)
    record_score_run(model, as_of_date, version, scored_at, rows, psi)
    return {"model": model, "version": version, "as_of": str(as_of_date),
            "rows": rows, "psi": psi}


def record_score_run(model: str, as_of: date, version: str, scored_at: datetime, rows: int,
                     psi: float | None) -> None:
    """Keep the publish's drift in ml.score_runs, one row per (model, as-of) slice like the
    scores it describes (a re-run replaces it), so drift can be followed over time."""
    run = pa.table({"model_name": [model], "as_of_date": pa.array([as_of], pa.date32()),
                    "model_version": [version],
                    "scored_at": pa.array([scored_at], pa.timestamp("us")),
                    "rows": pa.array([rows], pa.int64()),
                    "psi": pa.array([psi], pa.float64())})
    get_warehouse().replace_rows(ML_SCHEMA, SCORE_RUNS_TABLE, "SELECT * FROM {runs}",
                                 key={"model_name": model, "as_of_date": as_of},
                                 sources={"runs": run})


def score_drift(model: str, champion, as_of: date) -> float | None:
    """PSI of today's scores against the champion's back-test predictions; warn above 0.2."""
    from ml.modeling.metrics import population_stability_index

    spec = get_spec(model)
    try:
        import mlflow

        path = mlflow.artifacts.download_artifacts(
            f"runs:/{champion.run_id}/backtest_predictions.parquet")
    except Exception:  # noqa: BLE001 - no back-test artifact, no drift check
        return None
    # the champion's own learner: with ``candidate: best`` the run's tag names the chosen one
    learner = registry.client().get_run(champion.run_id).data.tags.get("candidate",
                                                                        spec.candidate)
    expected = pd.read_parquet(path, columns=[learner])[learner].to_numpy()
    wh = get_warehouse()
    actual = wh.read_arrow(f"SELECT score FROM {wh.relation(ML_SCHEMA, SCORES_TABLE)} WHERE "
                           "model_name = ? AND as_of_date = ?", [model, as_of],
                           stage=f"{model} scores for drift").column("score").to_numpy()
    psi = float(population_stability_index(expected, actual))
    if psi > PSI_WARNING:
        log.warning("%s v%s: score distribution shifted (PSI %.3f > %.2f) against its back-test",
                    model, champion.version, psi, PSI_WARNING)
    return psi


def _training_deciles(wh: Warehouse, spec: ModelSpec, numeric: list[str],
                      rows: int) -> tuple[dict[str, list[float]], set[str]]:
    """Inner PSI bin edges per numeric feature: the deciles of its training values (repeated
    edges merged), from a stable hash sample of about QUANTILE_SAMPLE_ROWS rows, since the
    warehouses share no quantile function. Also which of them are booleans (SQL compares
    those with numbers only through a CASE)."""
    if not numeric:
        return {}, set()
    where = ""
    if rows > QUANTILE_SAMPLE_ROWS:
        sample_of = math.ceil(rows / QUANTILE_SAMPLE_ROWS)
        where = f" WHERE {wh.shard_predicate(spec.columns.id, sample_of, 0)}"
    sample = wh.read_arrow(
        f"SELECT {', '.join(map(wh.quote, numeric))} FROM "
        f"{wh.relation(*split_name(spec.training_set))}{where}",
        stage=f"{spec.name} training sample for PSI bins").rename_columns(numeric)
    frame = model_frame(sample.to_pandas(), numeric, [])
    edges = {}
    for name in numeric:
        values = frame[name].dropna().to_numpy()
        edges[name] = (np.unique(np.quantile(values, np.linspace(0, 1, PSI_BINS + 1))[1:-1])
                       .tolist() if values.size else [])
    return edges, {f.name for f in sample.schema if pa.types.is_boolean(f.type)}


def _profile(wh: Warehouse, relation: str, where: str, params: list, numeric: list[str],
             categorical: list[str], edges: dict[str, list[float]],
             booleans: set[str]) -> tuple[int, dict]:
    """Rows of ``relation`` (filtered) and per feature its non-null rows, distinct values and
    histogram (numeric: rows per PSI bin; categorical: rows per category, None = null).
    Aggregates only: one pass for the numeric features, one per categorical one."""
    source = f"{wh.relation(*split_name(relation))}{f' WHERE {where}' if where else ''}"
    selects, select_params = ["count(*)"], []
    for name in numeric:
        column = wh.quote(name)
        value = (f"CASE WHEN {column} THEN 1 WHEN NOT {column} THEN 0 END" if name in booleans
                 else column)
        selects += [f"count({column})", f"count(DISTINCT {column})"]
        for low, high in zip([None, *edges[name]], [*edges[name], None], strict=True):
            tests = [test for test, bound in ((f"{value} >= ?", low), (f"{value} < ?", high))
                     if bound is not None]
            select_params += [bound for bound in (low, high) if bound is not None]
            selects.append(f"count(CASE WHEN {' AND '.join(tests)} THEN 1 END)" if tests
                           else f"count({column})")
    aggregates = wh.query(
        f"SELECT {', '.join(f'{e} AS v{i}' for i, e in enumerate(selects))} FROM {source}",
        select_params + params, stage=f"feature profile of {relation}")
    values = [aggregates.column(i)[0].as_py() for i in range(aggregates.num_columns)]
    rows, at, profile = values[0], 1, {}
    for name in numeric:
        bins = len(edges[name]) + 1
        profile[name] = {"non_null": values[at], "distinct": values[at + 1],
                         "histogram": values[at + 2:at + 2 + bins]}
        at += 2 + bins
    if categorical:
        counts = wh.query(" UNION ALL ".join(
            f"SELECT {i} AS feature, CAST({wh.quote(name)} AS STRING) AS category, "
            f"count(*) AS n FROM {source} GROUP BY CAST({wh.quote(name)} AS STRING)"
            for i, name in enumerate(categorical)), params * len(categorical),
            stage=f"category counts of {relation}").to_pylist()
        for i, name in enumerate(categorical):
            found = {r["category"]: r["n"] for r in counts if r["feature"] == i}
            profile[name] = {"non_null": rows - found.get(None, 0),
                             "distinct": sum(1 for c in found if c is not None),
                             "categories": found}
    return rows, profile


def _states(feature: dict, rows: int) -> int:
    """Distinct values, null counting as one: below 2 the feature tells no row apart."""
    return feature["distinct"] + (feature["non_null"] < rows)


def feature_skew(spec: ModelSpec, as_of: date, numeric: list[str],
                 categorical: list[str]) -> dict:
    """Each feature's null share, distinct values and PSI (numeric: deciles of training;
    categorical: category shares, plus the share of scoring rows in categories training
    never saw) between ``spec.training_set`` and the scoring population at ``as_of``.
    ``problem`` is set for a feature that varies in training but is absent or constant at
    scoring. A JSON-able report; decides nothing."""
    wh = get_warehouse()
    training_columns = set(wh.columns(*split_name(spec.training_set)))
    if not training_columns:
        raise ScoringError(f"{spec.name}: training set {spec.training_set} does not exist, so "
                           "the scoring population cannot be compared with it; run features")
    scoring_columns = set(wh.columns(*split_name(spec.scoring.relation)))
    not_in_training = [f for f in numeric + categorical if f not in training_columns]
    numeric = [f for f in numeric if f in training_columns]
    categorical = [f for f in categorical if f in training_columns]
    training_rows = wh.scalar(f"SELECT count(*) FROM "
                              f"{wh.relation(*split_name(spec.training_set))}",
                              stage=f"{spec.name} training rows")
    if not training_rows:
        raise ScoringError(f"{spec.name}: training set {spec.training_set} is empty, so the "
                           "scoring population cannot be compared with it; run features")
    edges, booleans = _training_deciles(wh, spec, numeric, training_rows)
    _, training = _profile(wh, spec.training_set, "", [], numeric, categorical, edges, booleans)
    scoring_rows, scoring = _profile(
        wh, spec.scoring.relation, _population_filter(wh, spec), [as_of],
        [f for f in numeric if f in scoring_columns],
        [f for f in categorical if f in scoring_columns], edges, booleans)
    if not scoring_rows:
        raise ScoringError(f"{spec.name}: the population at {as_of} is empty (no rows in "
                           f"{spec.scoring.relation} with {spec.scoring.population_column}); "
                           "previous scores are unchanged")
    features = {}
    for name in numeric + categorical:
        train = training[name]
        entry = {"kind": "numeric" if name in numeric else "categorical",
                 "training_null_share": 1 - train["non_null"] / training_rows,
                 "training_distinct": train["distinct"], "scoring_null_share": None,
                 "scoring_distinct": None, "psi": None, "problem": None}
        score = scoring.get(name)
        if score is None:
            entry["problem"] = f"is missing from {spec.scoring.relation}"
            features[name] = entry
            continue
        entry["scoring_null_share"] = 1 - score["non_null"] / scoring_rows
        entry["scoring_distinct"] = score["distinct"]
        if name in numeric:
            expected = [*train["histogram"], training_rows - train["non_null"]]
            actual = [*score["histogram"], scoring_rows - score["non_null"]]
        else:
            seen = sorted(c for c in train["categories"] if c is not None)
            unseen = sum(n for c, n in score["categories"].items()
                         if c is not None and c not in train["categories"])
            entry["unseen_share"] = unseen / scoring_rows
            expected = [*(train["categories"][c] for c in seen), 0,
                        train["categories"].get(None, 0)]
            actual = [*(score["categories"].get(c, 0) for c in seen), unseen,
                      score["categories"].get(None, 0)]
        entry["psi"] = psi_of_counts(expected, actual)
        if _states(train, training_rows) > 1 and _states(score, scoring_rows) < 2:
            entry["problem"] = (f"is null in all {scoring_rows:,} scoring rows"
                                if not score["non_null"]
                                else f"has one value in all {scoring_rows:,} scoring rows")
        features[name] = entry
    return {"as_of": as_of.isoformat(), "training_relation": spec.training_set,
            "scoring_relation": spec.scoring.relation, "training_rows": training_rows,
            "scoring_rows": scoring_rows, "features": features,
            "not_in_training_set": not_in_training,
            "drifted": [f for f, e in features.items()
                        if e["psi"] is not None and e["psi"] > FEATURE_PSI_WARNING],
            "failed": [f for f, e in features.items() if e["problem"]]}


def _distinct_text(count: int | None) -> str:
    return "-" if count is None else f"{count:,}"


def check_feature_skew(model: str, as_of: str) -> dict:
    """Train/serve skew check of the champion's features at ``as_of`` (see feature_skew):
    warn on PSI above 0.25, raise FeatureSkewError naming every feature that varies in
    training but is absent or constant at scoring. Writes nothing."""
    spec = get_spec(model)
    champion = champion_of(model)
    registry.configure()
    numeric, categorical = _input_columns(f"models:/{model}/{champion.version}")
    report = {"model": model, "version": str(champion.version),
              **feature_skew(spec, date.fromisoformat(str(as_of)), numeric, categorical)}
    for name in report["drifted"]:
        entry = report["features"][name]
        log.warning("%s v%s: feature %s differs between %s and the scoring population at %s "
                    "(PSI %.3f > %.2f; null share %.1f%% -> %.1f%%)", model, champion.version,
                    name, spec.training_set, as_of, entry["psi"], FEATURE_PSI_WARNING,
                    100 * entry["training_null_share"], 100 * entry["scoring_null_share"])
    if report["not_in_training_set"]:
        log.warning("%s v%s: feature(s) %s are no longer in %s; not compared", model,
                    champion.version, report["not_in_training_set"], spec.training_set)
    if report["failed"]:
        details = "; ".join(
            f"'{name}' {e['problem']} (null share {e['training_null_share']:.1%} in training"
            + ("" if e["scoring_null_share"] is None
               else f" vs {e['scoring_null_share']:.1%} at scoring")
            + f", distinct values {e['training_distinct']:,} vs "
              f"{_distinct_text(e['scoring_distinct'])})"
            for name, e in ((n, report["features"][n]) for n in report["failed"]))
        raise FeatureSkewError(
            f"champion {model} v{champion.version} cannot score {spec.scoring.relation} at "
            f"{as_of}: feature(s) it learned from vary in {spec.training_set} "
            f"({report['training_rows']:,} rows) but not in the scoring population "
            f"({report['scoring_rows']:,} rows), so every row would be scored as if they were "
            f"unknown: {details}. Make the dbt model of {spec.scoring.relation} fill them as "
            f"{spec.training_set} does, or exclude them in {spec.source_path} and retrain with "
            f"the train_{model} DAG; nothing was scored and the previous scores are unchanged")
    return report


def check_skew_for_jobs(jobs: list[dict]) -> list[dict]:
    """The skew check of every (model, as-of) among the planned shard jobs; raises one
    FeatureSkewError listing every failing model, before any shard runs."""
    reports, failures = [], []
    for model, as_of in dict.fromkeys((job["model"], job["as_of"]) for job in jobs):
        try:
            reports.append(check_feature_skew(model, as_of))
        except FeatureSkewError as exc:
            failures.append(str(exc))
    if failures:
        raise FeatureSkewError("\n".join(failures))
    return reports


def score_model(model: str, as_of: str | None = None, shards: int = 1) -> dict:
    """Skew check, all shards, then publish, in one process (the DAG maps the shards)."""
    spec = get_spec(model)
    champion_of(model)
    as_of_date = scoring_as_of(spec, as_of)
    skew = check_feature_skew(model, as_of_date.isoformat())
    prepare_staging(model, as_of_date)
    results = [score_shard(model, as_of_date.isoformat(), shard, shards) for shard in range(shards)]
    checkpoint("scoring.shards_written")
    return {**publish(model, as_of_date.isoformat(), results), "feature_skew": skew}


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
    from ml.modeling.specs import load_specs

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
