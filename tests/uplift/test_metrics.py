"""Uplift metrics against brute-force sums and against rankings whose quality is known."""

from __future__ import annotations

import numpy as np
import pytest

from ml.uplift.metrics import (
    auuc,
    bootstrap_gain_ci,
    qini_coefficient,
    qini_curve,
    uplift_at_capacity,
    uplift_curve,
    uplift_metrics,
)


def campaign(n: int, seed: int, treated_share: float = 0.5):
    """Customers whose true effect of contact on retention is known: some persuadable
    (+0.4), most indifferent, a few who leave because of the contact (-0.2)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, n, p=[0.3, 0.6, 0.1])
    effect = np.array([0.4, 0.0, -0.2])[kind]
    base = rng.uniform(0.2, 0.5, n)
    treated = rng.random(n) < treated_share
    y = (rng.random(n) < base + treated * effect).astype(float)
    return y, treated.astype(int), effect


def brute_force_qini(y, treated, score):
    order = np.argsort(-score)
    out = [0.0]
    for k in range(1, y.size + 1):
        top = order[:k]
        n_t, n_c = treated[top].sum(), (1 - treated[top]).sum()
        y_t, y_c = (y[top] * treated[top]).sum(), (y[top] * (1 - treated[top])).sum()
        out.append(y_t - y_c * (n_t / n_c if n_c else 0.0))
    return np.array(out)


def test_qini_curve_equals_the_definition_summed_by_hand():
    rng = np.random.default_rng(3)
    y, treated = rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 40)
    score = rng.permutation(40).astype(float)  # distinct scores: one point per customer
    k, q = qini_curve(y, treated, score)
    assert np.array_equal(k, np.arange(41))
    np.testing.assert_allclose(q, brute_force_qini(y, treated, score))


def test_uplift_at_capacity_by_hand():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
    treated = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    # top half: treated {1, 1}, control {0, 1}: 1.0 - 0.5
    assert uplift_at_capacity(y, treated, score, 0.5) == pytest.approx(0.5)
    # everyone: treated 3/4, control 1/4
    assert uplift_at_capacity(y, treated, score, 1.0) == pytest.approx(0.5)
    # top quarter: treated {1}, control {0}
    assert uplift_at_capacity(y, treated, score, 0.25) == pytest.approx(1.0)


def test_a_constant_score_is_exactly_random():
    y, treated, _ = campaign(2000, seed=1)
    flat = np.zeros(y.size)
    ate = y[treated == 1].mean() - y[treated == 0].mean()
    assert qini_coefficient(y, treated, flat) == pytest.approx(0.0, abs=1e-12)
    assert auuc(y, treated, flat) == pytest.approx(ate / 2)
    assert uplift_at_capacity(y, treated, flat, 0.1) == pytest.approx(ate)
    phi, gain = uplift_curve(y, treated, flat)
    np.testing.assert_allclose(phi, [0.0, 1.0])
    np.testing.assert_allclose(gain, [0.0, ate])


def test_true_effects_rank_far_above_random_and_their_reverse_below():
    y, treated, effect = campaign(20_000, seed=2)
    noise = np.random.default_rng(0).random(y.size)
    truth = uplift_metrics(y, treated, effect + 1e-6 * noise)
    random = uplift_metrics(y, treated, noise)
    reverse = uplift_metrics(y, treated, -effect + 1e-6 * noise)
    # the reference ranks observed outcomes, noise included: the truth reaches part of it
    assert truth["qini"] > 0.12 > 0.03 > abs(random["qini"])
    assert reverse["qini"] < -0.12
    assert truth["auuc"] > random["auuc"] > reverse["auuc"]
    # the top 30% by true effect are the persuadable: their effect is about +0.4
    assert truth["uplift_at_capacity"] == pytest.approx(0.4, abs=0.04)
    assert random["uplift_at_capacity"] == pytest.approx(0.1, abs=0.04)  # 0.3*0.4 - 0.1*0.2


def test_bad_input_is_refused_with_the_reason():
    y, treated, effect = campaign(100, seed=4)
    with pytest.raises(ValueError, match="treated and control"):
        qini_coefficient(y, np.ones(100), effect)
    with pytest.raises(ValueError, match="equal length"):
        auuc(y, treated[:50], effect)
    with pytest.raises(ValueError, match="0/1"):
        auuc(y, treated * 2, effect)
    with pytest.raises(ValueError, match="finite"):
        auuc(np.where(effect > 0, np.nan, y), treated, effect)
    with pytest.raises(ValueError, match="share"):
        uplift_at_capacity(y, treated, effect, 0)


def test_bootstrap_gain_of_the_truth_over_random_excludes_zero_and_of_a_tie_is_zero():
    ys, ts, effects, groups = [], [], [], []
    for g in range(3):
        y, t, e = campaign(3000, seed=10 + g)
        ys.append(y), ts.append(t), effects.append(e), groups.append(np.full(y.size, g))
    y, t, e, g = map(np.concatenate, (ys, ts, effects, groups))
    noise = np.random.default_rng(1).random(y.size)
    ci = bootstrap_gain_ci(y, t, e + 1e-6 * noise, noise, g, "qini", n_boot=60)
    assert ci["low"] > 0 and ci["low"] <= ci["gain"] <= ci["high"]
    tie = bootstrap_gain_ci(y, t, noise, noise, g, "uplift_at_capacity", n_boot=20)
    assert tie["gain"] == tie["low"] == tie["high"] == 0.0
    with pytest.raises(ValueError, match="unknown uplift metric"):
        bootstrap_gain_ci(y, t, noise, noise, g, "roc_auc")
