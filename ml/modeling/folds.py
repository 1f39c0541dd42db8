"""Rolling-origin folds: which rows train and which test at each out-of-time fold.

One rule at every level (the back-test, and the tuner nested inside each of its folds): a
fold at as-of date ``d`` tests on the snapshot ``d`` and trains only on rows whose label
had matured by ``d`` (``label_matured_on <= d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Fold:
    index: int
    as_of: pd.Timestamp
    train_rows: np.ndarray  # positional indices into the frame
    test_rows: np.ndarray


def plan_folds(as_of: pd.Series, matured_on: pd.Series, k: int) -> list[Fold]:
    """The ``k`` latest snapshots as test folds, oldest first; folds with no matured
    training rows are left out."""
    as_of = pd.to_datetime(as_of).to_numpy()
    matured_on = pd.to_datetime(matured_on).to_numpy()
    folds = []
    for fold_date in np.unique(as_of)[-k:]:
        train = np.flatnonzero(matured_on <= fold_date)
        if len(train):
            folds.append(Fold(len(folds), pd.Timestamp(fold_date), train,
                              np.flatnonzero(as_of == fold_date)))
    return folds
