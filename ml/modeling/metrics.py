"""Metrics for back-tests, the promotion gate and score-drift checks.

Point values that scikit-learn computes come from scikit-learn (ROC AUC, average
precision, log loss, Brier score, RMSE, MAE). Our own code is kept only where it has none:
expected calibration error, top-decile lift and capture (and lift as a share of the
attainable lift), the normalised Gini, the decile
calibration table and PSI; and for the batched bootstrap below.

Bootstrap kernels: plain numpy. Each metric has one weighted kernel that takes a ``(b, n)``
matrix of row weights and returns ``b`` values. A public function evaluates its kernel once with unit
weights; :func:`bootstrap_gain_ci` evaluates the same kernel with ``b`` rows of resampling
counts at a time. A row drawn ``k`` times weighs ``k``, which gives exactly the value the
metric takes on the resampled rows (tests check this), so the interval is for the metric
that is reported, and the rows are sorted once rather than once per bootstrap sample.

Conventions shared by the ranking metrics:

- Scores are ordered from high to low with a stable sort, so tied scores keep their row
  order. Lift and capture cut the top share in this order; AUC, average precision and the
  Gini give tied scores equal credit, so row order does not change them.
- Quantile bins (``expected_calibration_error(strategy="quantile")``, the decile tables) put
  a row in bin ``floor(n_bins * m / n)``, where ``m`` is the number of rows with a strictly
  lower score. Bins hold about equal numbers of rows, tied scores always share a bin, and
  bins can be left empty by large ties. An empty bin contributes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ml.modeling.specs import RANKING_METRICS, UPLIFT_METRICS

DECILES = 10
_CHUNK_CELLS = 1 << 19  # bootstrap weights evaluated per chunk (b * n): flat memory use


# ---------------------------------------------------------------- input checks


def _as_float(metric: str, name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{metric}: {name} must be numeric ({err})") from None
    if array.ndim != 1:
        raise ValueError(f"{metric}: {name} must be one-dimensional; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{metric}: {name} is empty")
    nan = int(np.isnan(array).sum())
    if nan:
        raise ValueError(f"{metric}: {name} has {nan} NaN values in {array.size} rows")
    infinite = int(np.isinf(array).sum())
    if infinite:
        raise ValueError(f"{metric}: {name} has {infinite} infinite values in {array.size} rows")
    return array


def _arrays(metric: str, **named) -> list[np.ndarray]:
    """Named inputs as finite 1-D float arrays of one common length."""
    arrays = {name: _as_float(metric, name, values) for name, values in named.items()}
    lengths = {name: array.size for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{name} has {size} rows" for name, size in lengths.items())
        raise ValueError(f"{metric}: length mismatch: {sizes}")
    return list(arrays.values())


def _binary(metric: str, y, p, *, probabilities: bool = False,
            needs: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``needs`` is ``"both"`` (both classes present) or ``"positive"`` (at least one 1)."""
    y, p = _arrays(metric, y=y, p=p)
    other = np.unique(y[(y != 0) & (y != 1)])
    if other.size:
        raise ValueError(f"{metric}: y must hold 0/1 labels; got other values "
                         f"{other[:5].tolist()}{' ...' if other.size > 5 else ''}")
    positives = int(y.sum())
    if needs == "both" and positives in (0, y.size):
        raise ValueError(f"{metric} needs both classes; got only {int(y[0])} in {y.size} rows")
    if needs == "positive" and positives == 0:
        raise ValueError(f"{metric} needs at least one positive; got only 0 in {y.size} rows")
    if probabilities:
        outside = (p < 0) | (p > 1)
        if outside.any():
            raise ValueError(f"{metric}: p must be probabilities in [0, 1]; {int(outside.sum())} "
                             f"values outside (min {p.min():g}, max {p.max():g})")
    return y, p


def _check_bins(metric: str, n_bins: int) -> None:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"{metric}: n_bins must be a positive integer; got {n_bins!r}")


def _check_share(metric: str, share: float) -> None:
    if not 0 < share <= 1:
        raise ValueError(f"{metric}: share must be in (0, 1]; got {share!r}")


# ---------------------------------------------------------------- weighted kernels


@dataclass(frozen=True)
class _Prepared:
    """A metric bound to validated data. ``evaluate`` maps a (b, n) int32 matrix of row
    weights (bootstrap draw counts) to b metric values."""

    n: int
    evaluate: Callable[[np.ndarray], np.ndarray]

    def value(self) -> float:
        return float(self.evaluate(np.ones((1, self.n), dtype=np.int32))[0])


def _running_totals(counts: np.ndarray) -> np.ndarray:
    """(b, m) int32 counts -> (b, m + 1) running totals from 0. Integer running sums are
    exact and several times faster than float ones; int32 holds them below 2**31 rows."""
    totals = np.zeros((counts.shape[0], counts.shape[1] + 1), dtype=np.int32)
    np.cumsum(counts, axis=1, dtype=np.int32, out=totals[:, 1:])
    return totals


@dataclass(frozen=True)
class _Ranked:
    """Rows by descending score (stable sort, so tied scores keep row order), with each
    ranked position's run of tied scores as [run_start, run_end)."""

    order: np.ndarray
    y: np.ndarray
    score: np.ndarray
    run_start: np.ndarray
    run_end: np.ndarray
    nonzero: np.ndarray  # ranked positions where y != 0

    @classmethod
    def of(cls, y: np.ndarray, score: np.ndarray) -> _Ranked:
        order = np.argsort(-score, kind="stable")
        ranked = score[order]
        new_run = np.r_[True, ranked[1:] != ranked[:-1]]
        starts = np.flatnonzero(new_run)
        run = np.cumsum(new_run) - 1
        return cls(order, y[order], ranked, starts[run], np.r_[starts[1:], ranked.size][run],
                   np.flatnonzero(y[order]))

    def weights(self, w: np.ndarray) -> np.ndarray:
        return w.take(self.order, axis=1)


@dataclass(frozen=True)
class _ClassRanks:
    """Each class's rows by ascending score and, per positive, how many negatives score
    strictly below it, how many at most equal, and how many positives strictly below."""

    negatives: np.ndarray
    positives: np.ndarray
    negatives_below: np.ndarray
    negatives_at_most: np.ndarray
    positives_below: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, score: np.ndarray) -> _ClassRanks:
        negatives, positives = (rows[np.argsort(score[rows], kind="stable")]
                                for rows in (np.flatnonzero(y == 0), np.flatnonzero(y == 1)))
        negative_score, positive_score = score[negatives], score[positives]
        return cls(negatives, positives,
                   np.searchsorted(negative_score, positive_score, side="left"),
                   np.searchsorted(negative_score, positive_score, side="right"),
                   np.searchsorted(positive_score, positive_score, side="left"))


def _auc_kernel(ranks: _ClassRanks, w: np.ndarray) -> np.ndarray:
    # Mann-Whitney: each positive wins the negative weight scored below it, half of ties.
    negative = _running_totals(w.take(ranks.negatives, axis=1))
    positive = w.take(ranks.positives, axis=1)
    twice_won = (negative.take(ranks.negatives_below, axis=1)
                 + negative.take(ranks.negatives_at_most, axis=1))
    wins = np.einsum("ij,ij->i", positive, twice_won, dtype=np.int64)
    return wins / (2 * positive.sum(axis=1, dtype=np.int64) * negative[:, -1])


def _average_precision_kernel(ranks: _ClassRanks, w: np.ndarray) -> np.ndarray:
    # Summed over positives: precision when flagging every row scored at least as high.
    negative = _running_totals(w.take(ranks.negatives, axis=1))
    positive = w.take(ranks.positives, axis=1)
    positive_totals = _running_totals(positive)
    true_pos = positive_totals[:, -1:] - positive_totals.take(ranks.positives_below, axis=1)
    flagged = true_pos + negative[:, -1:] - negative.take(ranks.negatives_below, axis=1)
    precision = np.divide(true_pos, flagged, out=np.zeros(flagged.shape), where=flagged > 0)
    return np.einsum("ij,ij->i", positive, precision) / positive_totals[:, -1]


def _top_share_kernel(ranked: _Ranked, w: np.ndarray, share: float) -> tuple[np.ndarray, ...]:
    """Positive weight in the top ``share`` of the weight (rounded half up, at least one
    row), all positive weight, the size of the top set and the total weight. Of a row
    drawn k times that straddles the cut, only the copies above it count."""
    ws = ranked.weights(w)
    through = _running_totals(ws)
    positive_through = _running_totals(ws * ranked.y.astype(np.int32))
    total = through[:, -1]
    top = np.maximum(np.floor(share * total + 0.5), 1).astype(np.int64)
    cut = (through[:, 1:] < top[:, None]).sum(axis=1)  # the row that completes the top set
    samples = np.arange(w.shape[0])
    in_top = positive_through[samples, cut] + ranked.y[cut] * (top - through[samples, cut])
    return in_top, positive_through[:, -1], top, total


def _quantile_bin_gaps(ranked: _Ranked, w: np.ndarray, n_bins: int) -> np.ndarray:
    """Per quantile bin (module docstring), the weighted sum of ``y - score`` -> (b, n_bins)."""
    ws = ranked.weights(w)
    through = _running_totals(ws)
    total = through[:, -1:].astype(np.int64)
    lower = total - through.take(ranked.run_end, axis=1)  # weight ranked below the tie run
    bins = np.minimum(n_bins * lower // total, n_bins - 1)
    return _sum_by_bin(bins, ws * (ranked.y - ranked.score), n_bins)


def _sum_by_bin(bins: np.ndarray, values: np.ndarray, n_bins: int) -> np.ndarray:
    """Sum (b, n) values by bin id, given per sample (b, n) or shared (n,) -> (b, n_bins)."""
    b = values.shape[0]
    cells = bins + n_bins * np.arange(b)[:, None]
    return np.bincount(cells.ravel(), weights=values.ravel(),
                       minlength=b * n_bins).reshape(b, n_bins)


def _uniform_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]; the edge value goes up and 1.0 joins the last bin
    (scikit-learn's ``calibration_curve(strategy="uniform")``)."""
    return np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p, side="right")


def _gini_kernel(ranked: _Ranked, w: np.ndarray) -> np.ndarray:
    """Area between the Lorenz curve of y (rows ranked by score, tied scores sharing their
    outcome) and the diagonal, for rows weighted by ``w``."""
    through = _running_totals(ranked.weights(w))
    total = through[:, -1].astype(np.int64)
    # Summed by outcome rather than by position, the area under the curve is each row's
    # outcome times the weight ranked below it plus half its tie run: integer running sums
    # only, and rows with outcome 0 drop out.
    rows = ranked.nonzero
    twice_below = (2 * through[:, -1:] - through.take(ranked.run_start[rows], axis=1)
                   - through.take(ranked.run_end[rows], axis=1))
    outcome = w.take(ranked.order[rows], axis=1) * ranked.y[rows]
    area = np.einsum("ij,ij->i", outcome, twice_below) / 2
    return area / (total * outcome.sum(axis=1)) - 0.5


def _weighted_mean(w: np.ndarray, per_row: np.ndarray) -> np.ndarray:
    return (w.astype(float) @ per_row) / w.sum(axis=1, dtype=np.int64)


def _quiet(kernel: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    # A bootstrap sample can miss a class; its value is NaN and the bootstrap drops it.
    def evaluate(w: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return kernel(w)

    return evaluate


# ---------------------------------------------------------------- preparation per metric


def _prepare_roc_auc(y, p) -> _Prepared:
    y, p = _binary("roc_auc", y, p, needs="both")
    ranks = _ClassRanks.of(y, p)
    return _Prepared(y.size, _quiet(lambda w: _auc_kernel(ranks, w)))


def _prepare_pr_auc(y, p) -> _Prepared:
    y, p = _binary("pr_auc", y, p, needs="both")
    ranks = _ClassRanks.of(y, p)
    return _Prepared(y.size, _quiet(lambda w: _average_precision_kernel(ranks, w)))


def _prepare_log_loss(y, p, eps: float = 1e-15) -> _Prepared:
    y, p = _binary("log_loss", y, p, probabilities=True)
    p = np.clip(p, eps, 1 - eps)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return _Prepared(y.size, _quiet(lambda w: _weighted_mean(w, loss)))


def _prepare_brier(y, p) -> _Prepared:
    y, p = _binary("brier", y, p, probabilities=True)
    squared = (y - p) ** 2
    return _Prepared(y.size, _quiet(lambda w: _weighted_mean(w, squared)))


def _prepare_ece(y, p, n_bins: int = 10, strategy: str = "quantile") -> _Prepared:
    metric = "expected_calibration_error"
    _check_bins(metric, n_bins)
    y, p = _binary(metric, y, p, probabilities=True)
    if strategy == "quantile":
        ranked = _Ranked.of(y, p)

        def evaluate(w: np.ndarray) -> np.ndarray:
            return np.abs(_quantile_bin_gaps(ranked, w, n_bins)).sum(axis=1) / w.sum(axis=1)
    elif strategy == "uniform":
        bins, gap = _uniform_bins(p, n_bins), y - p

        def evaluate(w: np.ndarray) -> np.ndarray:
            return np.abs(_sum_by_bin(bins, w * gap, n_bins)).sum(axis=1) / w.sum(axis=1)
    else:
        raise ValueError(f"{metric}: strategy must be 'quantile' or 'uniform'; got {strategy!r}")
    return _Prepared(y.size, _quiet(evaluate))


def _prepare_top_share(metric: str, y, p, share: float, *, lift: bool) -> _Prepared:
    _check_share(metric, share)
    ranked = _Ranked.of(*_binary(metric, y, p, needs="positive"))

    def evaluate(w: np.ndarray) -> np.ndarray:
        in_top, positives, top, total = _top_share_kernel(ranked, w, share)
        return (in_top / top) / (positives / total) if lift else in_top / positives

    return _Prepared(ranked.y.size, _quiet(evaluate))


def _prepare_attainable_lift_share(y, p, share: float = 0.1) -> _Prepared:
    metric = "lift_share_of_max"
    _check_share(metric, share)
    ranked = _Ranked.of(*_binary(metric, y, p, needs="both"))

    def evaluate(w: np.ndarray) -> np.ndarray:
        in_top, positives, top, total = _top_share_kernel(ranked, w, share)
        base_rate = positives / total
        lift = (in_top / top) / base_rate
        best = np.minimum(1.0, positives / top) / base_rate  # every top row a positive
        return (lift - 1) / (best - 1)  # undefined (NaN) for a resample of one class

    return _Prepared(ranked.y.size, _quiet(evaluate))


def _prepare_rmse(y, yhat) -> _Prepared:
    y, yhat = _arrays("rmse", y=y, yhat=yhat)
    squared = (y - yhat) ** 2
    return _Prepared(y.size, lambda w: np.sqrt(_weighted_mean(w, squared)))


def _prepare_mae(y, yhat) -> _Prepared:
    y, yhat = _arrays("mae", y=y, yhat=yhat)
    absolute = np.abs(y - yhat)
    return _Prepared(y.size, lambda w: _weighted_mean(w, absolute))


def _prepare_normalized_gini(y, yhat) -> _Prepared:
    y, yhat = _arrays("normalized_gini", y=y, yhat=yhat)
    if y.sum() <= 0:
        raise ValueError(f"normalized_gini needs a positive total of y; got {y.sum():g} "
                         f"in {y.size} rows")
    if y.min() == y.max():
        raise ValueError(f"normalized_gini needs y that varies; got only {y[0]:g} "
                         f"in {y.size} rows")
    by_prediction, by_outcome = _Ranked.of(y, yhat), _Ranked.of(y, y)
    return _Prepared(y.size, _quiet(
        lambda w: _gini_kernel(by_prediction, w) / _gini_kernel(by_outcome, w)))


def _prepare_calibration_error(y, yhat) -> _Prepared:
    metric = "decile_calibration_error"
    y, yhat = _arrays(metric, y=y, yhat=yhat)
    if y.mean() <= 0:
        raise ValueError(f"{metric} needs a positive mean of y; got {y.mean():g} "
                         f"in {y.size} rows")
    ranked = _Ranked.of(y, yhat)

    def evaluate(w: np.ndarray) -> np.ndarray:
        gaps = np.abs(_quantile_bin_gaps(ranked, w, DECILES)).sum(axis=1)
        return gaps / (w.astype(float) @ y)

    return _Prepared(y.size, _quiet(evaluate))


# ---------------------------------------------------------------- binary task


def roc_auc(y, p) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random
    negative, ties counting one half (Mann-Whitney U / (n_pos * n_neg)). Equals
    ``sklearn.metrics.roc_auc_score``."""
    y, p = _binary("roc_auc", y, p, needs="both")
    return float(skm.roc_auc_score(y, p))


def pr_auc(y, p) -> float:
    """Average precision: sum over distinct score thresholds of the recall gained times
    the precision there. Equals ``sklearn.metrics.average_precision_score``."""
    y, p = _binary("pr_auc", y, p, needs="both")
    return float(skm.average_precision_score(y, p))


def log_loss(y, p, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood with ``p`` clipped to ``[eps, 1 - eps]``. Equals
    ``sklearn.metrics.log_loss`` except for ``p`` within ``eps`` of 0 or 1, which
    scikit-learn clips at machine epsilon; ``eps=np.finfo(float).eps`` matches it there."""
    y, p = _binary("log_loss", y, p, probabilities=True)
    return float(skm.log_loss(y, np.clip(p, eps, 1 - eps), labels=[0, 1]))


def brier(y, p) -> float:
    """Mean squared error of the probabilities. Equals ``sklearn.metrics.brier_score_loss``."""
    y, p = _binary("brier", y, p, probabilities=True)
    return float(skm.brier_score_loss(y, p))


def expected_calibration_error(y, p, n_bins: int = 10, strategy: str = "quantile") -> float:
    """Sum over bins of (rows in bin / rows) * |mean(y) - mean(p)| in the bin.

    ``strategy="quantile"``: equal-count bins by rank of ``p`` (module docstring), so every
    bin has data wherever the scores concentrate. ``strategy="uniform"``: ``n_bins``
    equal-width bins on [0, 1], as ``sklearn.calibration.calibration_curve`` bins.
    """
    return _prepare_ece(y, p, n_bins, strategy).value()


def top_decile_lift(y, p, share: float = 0.1) -> float:
    """Positive rate among the ``share * n`` highest scores (rounded half up, at least one
    row; tied scores are cut in row order) divided by the overall positive rate."""
    return _prepare_top_share("top_decile_lift", y, p, share, lift=True).value()


def top_decile_capture(y, p, share: float = 0.1) -> float:
    """Share of all positives found among the ``share * n`` highest scores (the same top
    set as :func:`top_decile_lift`)."""
    return _prepare_top_share("top_decile_capture", y, p, share, lift=False).value()


def lift_share_of_max(y, p, share: float = 0.1) -> float:
    """Top-decile lift above random as a share of the most the base rate allows:
    ``(lift - 1) / (max_lift - 1)`` with ``max_lift = min(1, positives / top) / base_rate``.
    0 is random targeting, 1 a perfect ranking, whatever the base rate: at a churn base
    rate of 0.82 the raw lift cannot exceed 1.22, so a floor on raw lift means nothing there."""
    return _prepare_attainable_lift_share(y, p, share).value()


BINARY_METRICS: dict[str, Callable[..., float]] = {
    "roc_auc": roc_auc,
    "pr_auc": pr_auc,
    "log_loss": log_loss,
    "brier": brier,
    "ece": expected_calibration_error,
    "lift_top_decile": top_decile_lift,
    "capture_top_decile": top_decile_capture,
    "lift_share_of_max": lift_share_of_max,
}


def binary_metrics(y, p) -> dict[str, float]:
    """Every binary metric at its default settings."""
    return {name: fn(y, p) for name, fn in BINARY_METRICS.items()}


# ---------------------------------------------------------------- regression task


def rmse(y, yhat) -> float:
    """Root mean squared error."""
    y, yhat = _arrays("rmse", y=y, yhat=yhat)
    return float(skm.root_mean_squared_error(y, yhat))


def mae(y, yhat) -> float:
    """Mean absolute error."""
    y, yhat = _arrays("mae", y=y, yhat=yhat)
    return float(skm.mean_absolute_error(y, yhat))


def normalized_gini(y, yhat) -> float:
    """Gini of ``y`` ordered by ``yhat`` over the Gini of ``y`` ordered by itself (the
    Kaggle / insurance definition): 1 for a perfect ordering, about 0 for a random one,
    -1 for the reversed ordering when ``y`` has no ties.

    The Gini is the area between the Lorenz curve (cumulative share of ``y`` against
    cumulative share of rows, highest ``yhat`` first) and the diagonal. Rows with tied
    ``yhat`` share their outcome evenly, so the value does not depend on row order; without
    ties it equals the usual Kaggle implementation.
    """
    return _prepare_normalized_gini(y, yhat).value()


def _decile_bins(yhat: np.ndarray, n_bins: int) -> np.ndarray:
    strictly_lower = np.searchsorted(np.sort(yhat), yhat, side="left")
    return strictly_lower * n_bins // yhat.size


def decile_calibration(y, yhat, n_bins: int = DECILES) -> pd.DataFrame:
    """Per quantile bin of ``yhat`` (module docstring), lowest first: ``bin``,
    ``mean_pred``, ``mean_actual``, ``count``. Empty bins are left out."""
    _check_bins("decile_calibration", n_bins)
    y, yhat = _arrays("decile_calibration", y=y, yhat=yhat)
    bins = _decile_bins(yhat, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    filled = count > 0
    return pd.DataFrame({
        "bin": np.flatnonzero(filled),
        "mean_pred": np.bincount(bins, weights=yhat, minlength=n_bins)[filled] / count[filled],
        "mean_actual": np.bincount(bins, weights=y, minlength=n_bins)[filled] / count[filled],
        "count": count[filled],
    })


def decile_calibration_error(y, yhat) -> float:
    """Row-weighted mean over the deciles of ``yhat`` of |mean_actual - mean_pred|, divided
    by mean(y): the typical miscalibration as a share of the average outcome."""
    return _prepare_calibration_error(y, yhat).value()


REGRESSION_METRICS: dict[str, Callable[..., float]] = {
    "rmse": rmse,
    "mae": mae,
    "normalized_gini": normalized_gini,
    "calibration_error": decile_calibration_error,
}


def regression_metrics(y, yhat) -> dict[str, float]:
    return {name: fn(y, yhat) for name, fn in REGRESSION_METRICS.items()}


GREATER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "lift_top_decile": True,
    "capture_top_decile": True,
    "lift_share_of_max": True,
    "rmse": False,
    "mae": False,
    "normalized_gini": True,
    "calibration_error": False,
    # ranking (ml.recommend): more is better, except leaning on bestsellers
    **{name: not name.startswith("popularity_bias") for name in RANKING_METRICS},
    # uplift (ml.uplift): more incremental outcome among the targeted is better
    **dict.fromkeys(UPLIFT_METRICS, True),
}

_PREPARE: dict[str, Callable[..., _Prepared]] = {
    "roc_auc": _prepare_roc_auc,
    "pr_auc": _prepare_pr_auc,
    "log_loss": _prepare_log_loss,
    "brier": _prepare_brier,
    "ece": _prepare_ece,
    "lift_top_decile": lambda y, p: _prepare_top_share("top_decile_lift", y, p, 0.1, lift=True),
    "capture_top_decile":
        lambda y, p: _prepare_top_share("top_decile_capture", y, p, 0.1, lift=False),
    "lift_share_of_max": _prepare_attainable_lift_share,
    "rmse": _prepare_rmse,
    "mae": _prepare_mae,
    "normalized_gini": _prepare_normalized_gini,
    "calibration_error": _prepare_calibration_error,
}


# ---------------------------------------------------------------- uncertainty


def _strata(groups, n: int) -> list[np.ndarray] | None:
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size != n:
        raise ValueError(f"bootstrap_gain_ci: groups must be one-dimensional with one entry "
                         f"per row; got shape {groups.shape} for {n} rows")
    missing = int(pd.isna(groups).sum())
    if missing:
        raise ValueError(f"bootstrap_gain_ci: groups has {missing} missing values in {n} rows")
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


def _resample_counts(rng: np.random.Generator, strata: list[np.ndarray] | None, n: int,
                     b: int) -> np.ndarray:
    """``b`` bootstrap samples as (b, n) int32 draw counts (multinomial, drawn as
    ``bincount`` of uniform row picks). With strata each stratum draws its own number of
    rows, so every sample keeps the strata sizes."""
    counts = np.empty((b, n), dtype=np.int32)
    for sample in counts:
        if strata is None:
            sample[:] = np.bincount(rng.integers(0, n, n), minlength=n)
        else:
            for rows in strata:
                sample[rows] = np.bincount(rng.integers(0, rows.size, rows.size),
                                           minlength=rows.size)
    return counts


def _prepare_scores(metric: str, y, scores, name: str) -> _Prepared:
    try:
        return _PREPARE[metric](y, scores)
    except ValueError as err:
        raise ValueError(f"bootstrap_gain_ci, {name}: {err}") from None


def bootstrap_gain_ci(y, p_model, p_baseline, metric: str, n_boot: int = 500,
                      alpha: float = 0.05, seed: int = 0, groups=None,
                      mean_over_groups: bool = False) -> dict:
    """Paired bootstrap of ``metric(model) - metric(baseline)``, signed so that a positive
    gain means the model is better (lower-is-better metrics are negated).

    Both models are scored on the same resampled rows. With ``groups`` (e.g. fold ids) rows
    are resampled within each group. Returns the gain on the full data and the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the bootstrap gains; ``n_boot`` in the
    result counts the samples used, leaving out samples where the metric is undefined
    (e.g. a tiny fold resampled to a single class). With ``mean_over_groups`` the metric is
    the mean of its value per group (a back-test's mean over folds) instead of its value on
    all rows pooled.

    A sample is a vector of multinomial draw counts used as row weights, and the weighted
    metric kernels evaluate a chunk of samples at once on rows ranked once (module
    docstring): 500 samples of ROC AUC on 200k rows take a few seconds.
    """
    _check_bootstrap("bootstrap_gain_ci", metric, n_boot, alpha)
    model, baseline = (_prepare_scored(metric, y, scores, name, groups, mean_over_groups)
                       for name, scores in (("p_model", p_model), ("p_baseline", p_baseline)))
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    gains = _bootstrap_values(lambda w: sign * (model.evaluate(w) - baseline.evaluate(w)),
                              model.n, groups, n_boot, seed)
    if gains.size == 0:
        raise ValueError(f"bootstrap_gain_ci: {metric} is undefined on every bootstrap sample")
    low, high = np.quantile(gains, [alpha / 2, 1 - alpha / 2])
    return {"gain": sign * (model.value() - baseline.value()), "low": float(low),
            "high": float(high), "n_boot": int(gains.size)}


def bootstrap_ci(y, p, metric: str, n_boot: int = 500, alpha: float = 0.05, seed: int = 0,
                 groups=None, mean_over_groups: bool = False) -> dict:
    """Percentile bootstrap CI of one model's ``metric``, resampled within ``groups`` (e.g.
    fold ids) like :func:`bootstrap_gain_ci` and with the same kernels (and the same
    ``mean_over_groups``). Returns the value on the full data, the ``alpha/2`` and
    ``1 - alpha/2`` percentiles and the samples used."""
    _check_bootstrap("bootstrap_ci", metric, n_boot, alpha)
    prepared = _prepare_scored(metric, y, p, "p", groups, mean_over_groups)
    values = _bootstrap_values(prepared.evaluate, prepared.n, groups, n_boot, seed)
    if values.size == 0:
        raise ValueError(f"bootstrap_ci: {metric} is undefined on every bootstrap sample")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return {"value": prepared.value(), "low": float(low), "high": float(high),
            "n_boot": int(values.size)}


def _prepare_scored(metric: str, y, scores, name: str, groups,
                    mean_over_groups: bool) -> _Prepared:
    """``metric`` on all rows, or with ``mean_over_groups`` the mean over ``groups`` of its
    value within each (every group's kernel reads its own rows of the shared weights)."""
    if not mean_over_groups:
        return _prepare_scores(metric, y, scores, name)
    y, scores = np.asarray(y), np.asarray(scores)
    strata = _strata(groups, y.size)
    if strata is None:
        raise ValueError("bootstrap: mean_over_groups needs groups")
    parts = [(rows, _prepare_scores(metric, y[rows], scores[rows], name)) for rows in strata]
    return _Prepared(y.size, lambda w: np.mean([part.evaluate(w[:, rows]) for rows, part in parts],
                                               axis=0))


def _check_bootstrap(caller: str, metric: str, n_boot, alpha) -> None:
    if metric not in _PREPARE:
        raise ValueError(f"{caller}: unknown metric {metric!r}; choose from {sorted(_PREPARE)}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"{caller}: n_boot must be a positive integer; got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"{caller}: alpha must be in (0, 1); got {alpha!r}")


def _bootstrap_values(evaluate: Callable[[np.ndarray], np.ndarray], n: int, groups,
                      n_boot: int, seed: int) -> np.ndarray:
    """``evaluate`` on ``n_boot`` resamples, a chunk of weight rows at a time; the finite
    values only (a metric can be undefined on a resample)."""
    strata = _strata(groups, n)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    values = np.concatenate([
        evaluate(_resample_counts(rng, strata, n, min(chunk, int(n_boot) - start)))
        for start in range(0, int(n_boot), chunk)])
    return values[np.isfinite(values)]


# ---------------------------------------------------------------- drift


def population_stability_index(expected_scores, actual_scores, n_bins: int = 10,
                               eps: float = 1e-4) -> float:
    """PSI = sum over bins of (a - e) * ln(a / e), with e and a the shares of expected and
    actual scores per bin. Bins are the ``n_bins`` quantiles of the expected scores (repeated
    edges merged; the end bins are open, so actual scores outside the expected range
    still count); a share below ``eps`` is raised to ``eps`` so empty bins stay finite.
    Rule of thumb: < 0.1 stable, 0.1-0.2 watch, > 0.2 shifted."""
    metric = "population_stability_index"
    _check_bins(metric, n_bins)
    expected = _as_float(metric, "expected_scores", expected_scores)
    actual = _as_float(metric, "actual_scores", actual_scores)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, n_bins + 1))[1:-1])

    def counts(scores: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(edges, scores, side="right"), minlength=edges.size + 1)

    return psi_of_counts(counts(expected), counts(actual), eps)


def psi_of_counts(expected_counts, actual_counts, eps: float = 1e-4) -> float:
    """PSI of two histograms over the same bins (e.g. counted in the warehouse): shares
    below ``eps`` are raised to ``eps``, as in :func:`population_stability_index`."""
    e, a = (np.asarray(c, dtype=float) for c in (expected_counts, actual_counts))
    e, a = (np.maximum(c / max(c.sum(), 1), eps) for c in (e, a))
    return float(np.sum((a - e) * np.log(a / e)))
