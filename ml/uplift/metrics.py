"""How well a score ranks customers by the effect of contact, from a randomised campaign.

Every metric takes ``y`` (the outcome: retained 0/1, or revenue), ``treated`` (1 = contacted,
0 = randomised control) and ``score`` (higher = contact helps more) and never looks at an
individual's effect, which no campaign observes: it compares treated and control customers
among the top-ranked.

- **Qini curve** (Radcliffe 2007): targeting the top ``k`` customers, the incremental
  outcomes ``Q(k) = Y_T(k) - Y_C(k) * N_T(k) / N_C(k)`` (treated outcomes minus the control
  outcomes scaled to the treated count). The *Qini coefficient* is the area between the
  curve and the random-targeting diagonal, as a share of the same area for the perfect
  ranking of the observed outcomes (treated responders first, control responders last):
  0 = random, 1 = that reference ranking, negative = worse than random. Dividing by the
  reference area makes campaigns of different sizes and base rates comparable, so folds
  can be averaged.
- **AUUC**: the area under the uplift curve ``g(phi) = (mean_T - mean_C)(top phi) * phi``,
  the incremental outcome per customer of the population when the top share ``phi`` is
  targeted, integrated over ``phi`` in [0, 1] (random targeting gives ATE / 2). In outcome
  units per customer (retained customers, or revenue).
- **Uplift at capacity**: ``mean_T - mean_C`` among the top ``share`` by score, the effect
  of contact on the customers the budget can actually reach.

Ties in the score are one group (the curve moves through a tied block at once), as in
scikit-learn's ROC curve, so a constant score is exactly random.

Written here rather than imported: scikit-uplift (Qini, AUUC, uplift@k) is unmaintained
and pins old scikit-learn; CausalML's ``qini_score``/``auuc_score`` pull 48 packages and
work on DataFrames of named columns; the formulas are a dozen lines of numpy each and are
checked in ``tests/uplift/test_metrics.py`` against brute-force sums on small arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ml.modeling.specs import UPLIFT_METRICS

__all__ = ["UPLIFT_METRICS", "auuc", "bootstrap_gain_ci", "qini_coefficient", "qini_curve",
           "uplift_at_capacity", "uplift_curve", "uplift_metrics"]

DEFAULT_CAPACITY_SHARE = 0.3


def _arrays(y, treated, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated)
    score = np.asarray(score, dtype=np.float64)
    if not (y.ndim == treated.ndim == score.ndim == 1) or not (
            y.size == treated.size == score.size):
        raise ValueError(f"y, treated and score must be one-dimensional and of equal length, "
                         f"got shapes {y.shape}, {treated.shape}, {score.shape}")
    if y.size == 0:
        raise ValueError("uplift metrics need at least one customer, got none")
    if not np.isin(treated, (0, 1, True, False)).all():
        raise ValueError("treated must be 0/1 (or booleans)")
    treated = treated.astype(bool)
    if treated.all() or not treated.any():
        raise ValueError(f"uplift metrics need treated and control customers, got "
                         f"{int(treated.sum())} treated of {treated.size}")
    if not (np.isfinite(y).all() and np.isfinite(score).all()):
        raise ValueError("y and score must be finite (no NaN)")
    return y, treated, score


def _cumulative(y: np.ndarray, treated: np.ndarray, score: np.ndarray):
    """Cumulative counts and outcome sums of treated and control at each distinct score,
    highest first: (k, n_t, n_c, y_t, y_c), each starting at 0 (nobody targeted)."""
    order = np.argsort(-score, kind="stable")
    s, t, yy = score[order], treated[order], y[order]
    ends = np.append(np.flatnonzero(np.diff(s)), s.size - 1)  # last index of each tie block
    n_t = np.cumsum(t)[ends]
    n_c = np.cumsum(~t)[ends]
    y_t = np.cumsum(yy * t)[ends]
    y_c = np.cumsum(yy * ~t)[ends]
    zero = np.zeros(1)
    return (np.concatenate([zero, ends + 1.0]), np.concatenate([zero, n_t]),
            np.concatenate([zero, n_c]), np.concatenate([zero, y_t]),
            np.concatenate([zero, y_c]))


def qini_curve(y, treated, score) -> tuple[np.ndarray, np.ndarray]:
    """(k, Q(k)) at every distinct score, from (0, 0) to (n, Q(n))."""
    y, treated, score = _arrays(y, treated, score)
    k, n_t, n_c, y_t, y_c = _cumulative(y, treated, score)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return k, y_t - y_c * ratio


def uplift_curve(y, treated, score) -> tuple[np.ndarray, np.ndarray]:
    """(phi, g(phi)): share targeted and the incremental outcome per customer of the
    population, (mean_T - mean_C) of the targeted times phi (0 where an arm is empty)."""
    y, treated, score = _arrays(y, treated, score)
    k, n_t, n_c, y_t, y_c = _cumulative(y, treated, score)
    both = (n_t > 0) & (n_c > 0)
    diff = np.zeros_like(k)
    diff[both] = y_t[both] / n_t[both] - y_c[both] / n_c[both]
    phi = k / y.size
    return phi, diff * phi


def _perfect_score(y: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """The best ranking the observed outcomes allow: treated by outcome (highest first), then
    control by outcome (lowest first), as scikit-uplift's perfect curve (a reference that
    normalises the area, not a proven maximum of it)."""
    return np.where(treated, y, -y)


def _area_above_random(k: np.ndarray, q: np.ndarray) -> float:
    random = q[-1] * k / k[-1]
    return float(np.trapezoid(q - random, k))


def qini_coefficient(y, treated, score) -> float:
    """Area between the Qini curve and the diagonal over the same area for the perfect
    ranking: 1 perfect, 0 random (NaN when even the perfect ranking is no better than
    random, e.g. every outcome equal)."""
    y, treated, score = _arrays(y, treated, score)
    model = _area_above_random(*qini_curve(y, treated, score))
    best = _area_above_random(*qini_curve(y, treated, _perfect_score(y, treated)))
    return model / best if best > 0 else float("nan")


def auuc(y, treated, score) -> float:
    """Area under the uplift curve over the targeted share in [0, 1]."""
    phi, gain = uplift_curve(y, treated, score)
    return float(np.trapezoid(gain, phi))


def uplift_at_capacity(y, treated, score, share: float = DEFAULT_CAPACITY_SHARE) -> float:
    """mean_T - mean_C among the top ``share`` of customers by score (ties at the cut all
    in, so a constant score gives the overall effect). NaN if an arm is empty there."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    y, treated, score = _arrays(y, treated, score)
    cut = np.sort(score)[::-1][max(int(np.ceil(share * y.size)) - 1, 0)]
    top = score >= cut
    t, c = top & treated, top & ~treated
    if not t.any() or not c.any():
        return float("nan")
    return float(y[t].mean() - y[c].mean())


def uplift_metrics(y, treated, score, capacity_share: float = DEFAULT_CAPACITY_SHARE,
                   ) -> dict[str, float]:
    return {"qini": qini_coefficient(y, treated, score), "auuc": auuc(y, treated, score),
            "uplift_at_capacity": uplift_at_capacity(y, treated, score, capacity_share)}


def _metric(name: str, capacity_share: float) -> Callable[..., float]:
    if name == "qini":
        return qini_coefficient
    if name == "auuc":
        return auuc
    if name == "uplift_at_capacity":
        return lambda y, t, s: uplift_at_capacity(y, t, s, capacity_share)
    raise ValueError(f"unknown uplift metric {name!r}; choose from {list(UPLIFT_METRICS)}")


def bootstrap_gain_ci(y, treated, score_model, score_baseline, groups, metric: str,
                      n_boot: int = 300, alpha: float = 0.05, seed: int = 0,
                      capacity_share: float = DEFAULT_CAPACITY_SHARE) -> dict:
    """Paired bootstrap CI of the gain in the mean over ``groups`` (the back-test's
    campaigns) of ``metric``: customers resampled within each campaign, treated and control
    apart (so every resample keeps both arms at their sizes), both scores on the same
    resample. Returns {"gain", "low", "high", "n_boot"} like ``ml.modeling.metrics``."""
    fn = _metric(metric, capacity_share)
    y, treated, score_model = _arrays(y, treated, score_model)
    score_baseline = np.asarray(score_baseline, dtype=np.float64)
    groups = np.asarray(groups)
    if score_baseline.shape != y.shape or groups.shape != y.shape:
        raise ValueError("score_baseline and groups must have one value per customer")
    cells = [[np.flatnonzero((groups == g) & (treated == arm)) for arm in (True, False)]
             for g in np.unique(groups)]
    cells = [cell for cell in cells if cell[0].size and cell[1].size]
    if not cells:
        raise ValueError("bootstrap_gain_ci: no group has both treated and control customers")

    def gain(rows: list[np.ndarray]) -> float:
        values = [fn(y[r], treated[r], score_model[r]) - fn(y[r], treated[r], score_baseline[r])
                  for r in rows]
        return float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")

    observed = gain([np.concatenate(cell) for cell in cells])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        rows = [np.concatenate([rng.choice(arm, arm.size) for arm in cell]) for cell in cells]
        draws.append(gain(rows))
    draws = np.array(draws)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        raise ValueError(f"bootstrap_gain_ci: {metric} is undefined on every bootstrap sample")
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return {"gain": observed, "low": float(low), "high": float(high), "n_boot": int(draws.size)}
