"""The uplift training set: one row per (campaign, customer) of the past randomised
campaigns, with the features at the campaign's as-of date, the treatment flag, the channel
and the outcome in the horizon (dbt: ``marts.uplift_training_set``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.modeling.specs import ModelSpec
from ml.modeling.training_data import (
    ModelNotApplicable,
    TrainingDataError,
    feature_columns,
    fingerprint,
    model_frame,
    read_relation,
)
from ml.warehouse import get_warehouse, split_name

CAMPAIGNS_TABLE = "campaign_assignments"


class UpliftNotApplicable(ModelNotApplicable):
    """This data cannot train an uplift model (no past randomised campaign, or none with a
    matured outcome and an earlier one to learn from): a recorded skip, not a failure."""


@dataclass
class UpliftSet:
    frame: pd.DataFrame  # keys, campaign, treated, label, matured date, then the features
    numeric: list[str]
    categorical: list[str]
    treated: np.ndarray
    source_rows: int
    fingerprint: str
    unavailable: list[str]

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical


def load_uplift_set(spec: ModelSpec) -> UpliftSet:
    """Read and check the training set. Raises UpliftNotApplicable when there is nothing
    to learn from, TrainingDataError (naming relation, column and rows) for bad rows."""
    from ml.marts import raw_tables_present

    if CAMPAIGNS_TABLE not in raw_tables_present():
        raise UpliftNotApplicable(f"model {spec.name}: uplift needs past randomised campaigns "
                                  f"(the raw table {CAMPAIGNS_TABLE}), which this data does "
                                  "not have")
    cols, uplift = spec.columns, spec.uplift
    where = f"model {spec.name}, relation {spec.training_set}"
    df = read_relation(spec.training_set)
    needed = [cols.id, cols.as_of, cols.label, cols.label_matured_on, uplift.treatment_column,
              uplift.campaign_column, uplift.channel_column]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise TrainingDataError(f"{where}: column(s) {missing} are missing; the relation has "
                                f"{list(df.columns)}")
    if df.empty:
        raise UpliftNotApplicable(f"{where}: no campaign row has a matured outcome yet (a "
                                  f"campaign's outcome matures {spec.horizon_days} days after "
                                  "it starts)")
    for column in (cols.label, uplift.treatment_column):
        nulls = int(df[column].isna().sum())
        if nulls:
            raise TrainingDataError(f"{where}: column '{column}' has {nulls} null value(s) of "
                                    f"{len(df)} rows; fix the campaign_outcomes mart")
    duplicated = int(df.duplicated([uplift.campaign_column, cols.id]).sum())
    if duplicated:
        raise TrainingDataError(f"{where}: {duplicated} duplicate (campaign, customer) rows")
    reserved = [uplift.treatment_column, uplift.campaign_column]
    spec = spec.model_copy(update={"features": spec.features.model_copy(
        update={"exclude": [*spec.features.exclude, *reserved]})})
    numeric, categorical = feature_columns(spec, df.columns, df.dtypes)
    unavailable = [c for c in numeric + categorical if df[c].isna().all()]
    numeric = [c for c in numeric if c not in unavailable]
    categorical = [c for c in categorical if c not in unavailable]
    df = df.sort_values([cols.as_of, uplift.campaign_column, cols.id],
                        kind="stable").reset_index(drop=True)
    frame = pd.concat([df[[cols.id, cols.as_of, cols.label, cols.label_matured_on,
                           uplift.campaign_column]],
                       model_frame(df, numeric, categorical)], axis=1)
    frame[cols.as_of] = pd.to_datetime(frame[cols.as_of])
    frame[cols.label_matured_on] = pd.to_datetime(frame[cols.label_matured_on])
    treated = df[uplift.treatment_column].astype(bool).to_numpy()
    return UpliftSet(frame=frame, numeric=numeric, categorical=categorical, treated=treated,
                     source_rows=len(df), fingerprint=fingerprint(frame),
                     unavailable=unavailable)


def true_effects(spec: ModelSpec) -> pd.DataFrame | None:
    """The simulator's true effect per (campaign, customer), for the back-test's oracle
    only (never a feature); None when the data has none (real data)."""
    relation = spec.uplift.oracle_relation
    if not relation:
        return None
    schema, table = split_name(relation)
    if not get_warehouse().table_exists(schema, table):
        return None
    return read_relation(relation, [spec.uplift.campaign_column, spec.columns.id, "effect"])
