"""Assignment by design: hashed, stratified, sized by a power calculation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from ml.experiments.assignment import (
    MAX_CONTROL_SHARE,
    MIN_CONTROL_SHARE,
    assign_control,
    control_share_for,
    detectable_effect,
    unit_values,
)

IDS = np.array([f"C{i:07d}" for i in range(5_000)])
DECILES = np.random.default_rng(0).integers(1, 11, IDS.size)


def test_same_campaign_same_group_whatever_the_order_of_the_list():
    first = assign_control("spring", IDS, DECILES, 0.2)
    order = np.random.default_rng(1).permutation(IDS.size)
    shuffled = assign_control("spring", IDS[order], DECILES[order], 0.2)
    assert np.array_equal(first[order], shuffled)
    other = assign_control("autumn", IDS, DECILES, 0.2)
    assert 0.5 < (first == other).mean() < 0.9  # another campaign reshuffles


def test_every_decile_holds_out_exactly_its_share():
    control = assign_control("spring", IDS, DECILES, 0.13)
    for decile in range(1, 11):
        rows = DECILES == decile
        assert control[rows].sum() == round(0.13 * rows.sum())
    assert assign_control("spring", IDS, DECILES, 0.0).sum() == 0
    assert assign_control("spring", IDS[:0], DECILES[:0], 0.1).size == 0


def test_unit_values_are_uniform_and_stable():
    values = unit_values("spring", IDS)
    assert kstest(values, "uniform").pvalue > 0.001
    assert values[17] == unit_values("spring", [IDS[17]])[0]


@pytest.mark.parametrize("bad", [-0.1, 0.6])
def test_bad_share_or_duplicates_are_refused(bad):
    with pytest.raises(ValueError, match="control share"):
        assign_control("spring", IDS, DECILES, bad)
    with pytest.raises(ValueError, match="unique"):
        assign_control("spring", np.array(["a", "a"]), np.array([1, 1]), 0.1)


def test_power_share_is_the_smallest_that_detects_the_stated_effect():
    plan = control_share_for(20_000, 0.4, min_detectable_effect=0.03)
    assert plan.reaches_target and MIN_CONTROL_SHARE < plan.control_share < MAX_CONTROL_SHARE
    n_control = round(plan.control_share * 20_000)
    assert detectable_effect(20_000 - n_control, n_control, 0.4) <= 0.03 + 1e-9
    fewer = round((plan.control_share - 0.01) * 20_000)
    assert detectable_effect(20_000 - fewer, fewer, 0.4) > 0.03


def test_too_few_customers_get_an_even_split_and_say_what_it_detects():
    plan = control_share_for(500, 0.4, min_detectable_effect=0.03)
    assert plan.control_share == MAX_CONTROL_SHARE and not plan.reaches_target
    assert plan.detectable_effect > 0.03 and "too few" in plan.reason and "50.0%" in plan.reason
    assert control_share_for(10_000_000, 0.4, 0.03).control_share == MIN_CONTROL_SHARE


def test_the_power_is_what_it_says_in_simulated_experiments():
    """Simulate campaigns at the planned share with a true effect equal to the detectable
    one: a two-sided z-test at 5% rejects in about 80% of them."""
    rng = np.random.default_rng(5)
    plan = control_share_for(4_000, 0.5, min_detectable_effect=0.06)
    n_control = round(plan.control_share * 4_000)
    n_treated = 4_000 - n_control
    effect = plan.detectable_effect
    trials = 3_000
    control = rng.binomial(n_control, 0.5, trials) / n_control
    treated = rng.binomial(n_treated, 0.5 + effect, trials) / n_treated
    se = np.sqrt(control * (1 - control) / n_control + treated * (1 - treated) / n_treated)
    power = (np.abs(treated - control) / se > 1.959964).mean()
    assert power == pytest.approx(0.8, abs=0.03)


def test_the_plan_sizes_and_hashes_its_control_group():
    """plan_campaign without a control share: the power calculation sizes it on the selected
    customers, each decile holds out its share, and the group depends on (campaign,
    customer) only."""
    from ml.decisions.allocation import Channel, plan_campaign

    rng = np.random.default_rng(3)
    n = 3_000
    p, v = rng.uniform(0.2, 0.9, n), rng.gamma(2.0, 50.0, n)
    deciles = np.ceil(p * 10).astype(int)
    channels = [Channel("crm_email", 0.05, 0.05), Channel("direct_mail", 1.5, 0.1)]
    plan, control, summary = plan_campaign(p, v, deciles, channels, 1_000.0, None, 0,
                                           campaign="retention-2026-01-01", customer_ids=IDS[:n],
                                           min_detectable_effect=0.08)
    selected = plan.channel_index >= 0
    power = summary["power"]
    assert summary["control_share_source"] == "power"
    assert power["customers"] == selected.sum() and power["reaches_target"]
    assert power["baseline_retention"] == pytest.approx(1 - p[selected].mean())
    for decile in np.unique(deciles[selected]):
        rows = selected & (deciles == decile)
        assert control[rows].sum() == round(summary["control_share"] * rows.sum())
    expected = assign_control("retention-2026-01-01", IDS[:n][selected], deciles[selected],
                              summary["control_share"])
    assert np.array_equal(control[selected], expected) and not control[~selected].any()
    given = plan_campaign(p, v, deciles, channels, 1_000.0, 0.3, 0, campaign="x",
                          customer_ids=IDS[:n])[2]
    assert given["control_share"] == 0.3 and given["control_share_source"] == "given"
    assert "set by hand" in given["power"]["reason"]
