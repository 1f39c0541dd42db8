"""Loading and checking a model's training set, and the feature frame every learner takes."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.modeling.specs import ModelSpec
from ml.warehouse import get_warehouse, split_name

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The training set cannot train this model; nothing was registered."""


class ModelNotApplicable(RuntimeError):
    """This data cannot train this model (a table it needs is absent, or no label has
    matured yet): the training DAG records the reason and skips, rather than fails."""


class UntrainableHistory(TrainingDataError, ModelNotApplicable):
    """This history cannot train the model (every label one class, no fold with matured
    training data): a skip with the reason, not a failure."""


class NoMaturedLabels(UntrainableHistory):
    """The history is shorter than the label horizon, so no training row exists: a skip
    (with the reason) until more history is loaded, not a failure."""


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # keys, label, label_matured_on and the model frame's feature columns
    numeric: list[str]
    categorical: list[str]
    source_rows: int  # rows in the relation before any sampling
    sampled: bool
    fingerprint: str
    unavailable: list[str]  # features dropped because their source data is absent

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical


def read_relation(relation: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A whole relation (or some of its columns), streamed from the warehouse."""
    schema, table = split_name(relation)
    wh = get_warehouse()
    if not wh.table_exists(schema, table):
        raise TrainingDataError(f"relation {relation} does not exist in the warehouse; "
                                "run the features DAG first (`ml run`)")
    cols = ", ".join(map(wh.quote, columns)) if columns else "*"
    return wh.read_arrow(f"SELECT {cols} FROM {wh.relation(schema, table)}",
                         stage=f"read {relation}").to_pandas()


def model_frame(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Features exactly as the pipelines (and the logged signature) expect them."""
    out = {c: pd.to_numeric(df[c], errors="coerce").astype("float64") for c in numeric}
    for c in categorical:
        out[c] = df[c].astype("object").where(df[c].notna(), None)
    return pd.DataFrame(out, index=df.index)[numeric + categorical]


def feature_columns(spec: ModelSpec, columns: pd.Index, dtypes: pd.Series) -> tuple[list[str], list[str]]:
    cols = spec.columns
    reserved = {cols.id, cols.as_of, cols.label, cols.label_matured_on}
    missing = [c for c in (spec.features.include or []) + spec.features.exclude
               if c not in columns]
    if spec.features.include is not None and missing:
        raise TrainingDataError(
            f"model {spec.name}: spec {spec.source_path} names column(s) {missing} that "
            f"relation {spec.training_set} does not have; fix features.include/exclude")
    chosen = spec.features.include or [c for c in columns
                                       if c not in reserved and c not in spec.features.exclude]
    numeric = [c for c in chosen if pd.api.types.is_numeric_dtype(dtypes[c])
               or pd.api.types.is_bool_dtype(dtypes[c])]
    categorical = [c for c in chosen if c not in numeric]
    return numeric, categorical


def fingerprint(df: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def stratified_sample(df: pd.DataFrame, strata: list[str], cap: int, seed: int = 0) -> pd.DataFrame:
    """At most ``cap`` rows, each stratum keeping its share (so label rates and snapshot
    mix are preserved)."""
    if len(df) <= cap:
        return df
    fraction = cap / len(df)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(df), dtype=bool)
    for idx in df.groupby(strata, sort=False, observed=True).indices.values():
        n = max(1, int(round(len(idx) * fraction)))
        keep[rng.choice(idx, size=min(n, len(idx)), replace=False)] = True
    return df[keep]


def load_training_set(spec: ModelSpec, unavailable: list[str] | None = None) -> TrainingSet:
    """Read, check and prepare ``spec.training_set``. Raises TrainingDataError naming the
    model, relation and column for every problem that would make training meaningless."""
    df = read_relation(spec.training_set)
    where = f"model {spec.name}, relation {spec.training_set}"
    cols = spec.columns
    for role, column in (("id", cols.id), ("as_of", cols.as_of), ("label", cols.label),
                         ("label_matured_on", cols.label_matured_on)):
        if column not in df.columns:
            raise TrainingDataError(f"{where}: {role} column '{column}' is missing; the relation "
                                    f"has {list(df.columns)}")
    if df.empty:
        raise NoMaturedLabels(
            f"{where}: the population is empty (0 rows with a matured label): a label matures "
            f"{spec.horizon_days} days (horizon_days) after its snapshot and the history is "
            "not long enough for any; load more history or shorten horizon_days")
    if df[cols.label].isna().any():
        raise TrainingDataError(f"{where}: column '{cols.label}' has "
                                f"{int(df[cols.label].isna().sum())} null labels")
    if spec.task == "binary":
        classes = sorted(df[cols.label].unique().tolist())
        if len(classes) < 2:
            raise UntrainableHistory(
                f"{where}: column '{cols.label}' has one class only ({classes[0]!r} in all "
                f"{len(df)} rows); a classifier needs both")
    unavailable = [c for c in (unavailable or []) if c in df.columns]
    numeric, categorical = feature_columns(spec, df.columns.drop(unavailable), df.dtypes)
    # A feature null in every row (a 90-day trend on a shorter history, say) carries
    # nothing: it is left out and listed as unavailable on the model card.
    all_null = [c for c in numeric + categorical if df[c].isna().all()]
    if all_null:
        log.warning("%s: feature column(s) %s are null in all %d rows; trained without them",
                    where, all_null, len(df))
        numeric = [c for c in numeric if c not in all_null]
        categorical = [c for c in categorical if c not in all_null]
        unavailable = [*unavailable, *all_null]
    if not numeric + categorical:
        raise TrainingDataError(f"{where}: no feature column has a value; the relation has "
                                f"{list(df.columns)}")
    source_rows = len(df)
    sampled = source_rows > spec.max_training_rows
    if sampled:
        df = stratified_sample(df, [cols.as_of, cols.label] if spec.task == "binary"
                               else [cols.as_of], spec.max_training_rows)
    df = df.sort_values([cols.as_of, cols.id], kind="stable").reset_index(drop=True)
    frame = pd.concat(
        [df[[cols.id, cols.as_of, cols.label, cols.label_matured_on]],
         model_frame(df, numeric, categorical)], axis=1)
    frame[cols.as_of] = pd.to_datetime(frame[cols.as_of])
    frame[cols.label_matured_on] = pd.to_datetime(frame[cols.label_matured_on])
    return TrainingSet(frame=frame, numeric=numeric, categorical=categorical,
                       source_rows=source_rows, sampled=sampled,
                       fingerprint=fingerprint(frame), unavailable=unavailable)
