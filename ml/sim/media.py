"""The synthetic media world: daily spend on five paid channels and the new customers it buys.

Spend is planned the way media teams plan it, so that effects are identifiable:

* **SEM** and **Affiliate** are always on; SEM's budget level shifts every quarter or so
  (x0.6 to x1.5), Affiliate drifts slowly;
* **Display**, **Social** and **Prospecting** (CRM prospecting: mailings to bought lists)
  run in *flights* of 2-8 weeks with pauses of 1-5 weeks between them, each flight at
  its own level.

Daily spend carries lognormal noise (sigma 0.15). Impressions follow spend through a
channel CPM (noisy); clicks follow impressions through a channel click rate (noisy).

The expected number of new customers on day ``d`` is

    baseline(d) * (1 + PROMOTION_LIFT * promotion(d))  +  sum_c beta_c * (1 - exp(-a_c(d) / k_c))

* ``baseline`` is the generator's own signup profile (trend: signups double over the
  window; the November/December peak), scaled so that media buys about MEDIA_SHARE of the
  window's new customers at the planned spend;
* ``promotion(d)`` is 1 on the retailer's sale days (``promotion_days``: Black Friday to
  Cyber Monday, 26 Dec - 3 Jan, 1-7 July), public calendar knowledge the model may use as
  a control;
* ``a_c(d)`` is the geometric adstock of channel c's daily spend (carry-over ``alpha_c``,
  normalised so a constant spend s has adstock s), ``k_c`` its saturation scale in dollars
  per day and ``beta_c`` its ceiling in customers per day.

``ml.sim.history`` draws the signup days of the customers who join inside the window from
this rate (their number is fixed by ``--customers``, so the daily counts are Poisson
draws conditioned on the total). The truth (per day and channel: spend, adstock,
contribution, baseline; per channel: alpha, k, beta) goes to ``eval.media_truth``, which
no model reads. ``true_daily_outcome`` evaluates a planned daily spend on the true curves
(steady state), which is how ``bench/mmm.py`` scores a budget plan.

**Lift tests** (``lift_tests``; ``raw.media_lift_tests``, the model's calibration): one
geo-holdout per channel, designed before anything is known about the curves. For
LIFT_TEST_DAYS days starting on a Monday (drawn among the days when the channel is on
throughout the test, outside the first LIFT_TEST_MARGIN_DAYS and the last 10 weeks) the
channel goes dark in a random LIFT_TEST_GEO_SHARE of the market. The true effect is the
difference in the true expected new customers over the test days, with the true adstock
(the carry-over after the test ends is not measured, as in a real readout) and saturation,
extrapolated to the whole market (divided by the treated share), the way a geo-lift readout
states it. Its standard error is that of a geo comparison of Poisson counts: treated geos'
new customers against a counterfactual scaled from the control geos (variance
``Y g / (1 - g)`` for Y expected new customers in the window, treated share g), divided by
g, times LIFT_TEST_MISMATCH for the synthetic control's imperfect match. The measurement is
the true effect plus that noise (a normal draw), and the readout reports that standard
error. At make demo's size (~2 new customers a day) a 4-week test has a standard error
several times its effect: lift tests need volume. The raw spend and signups are business
as usual (the treated geos' change is not subtracted from the national series: a documented
simplification). The true effects are in ``true_lift_effects`` (evaluation only, for
bench/mmm.py).

Deterministic per seed: the media world has its own random stream (seed, MEDIA_STREAM), so
adding it left every other random draw of the generator as it was; the lift tests have
another (seed, MEDIA_STREAM, 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from ml.schema import MEDIA_TRUTH_COLUMNS, RAW_TABLES, arrow_schema

MEDIA_STREAM = 16  # the media world's own random stream, next to the generator seed
PAID_CHANNELS = ("SEM", "Display", "Social", "Affiliate", "Prospecting")
ALWAYS_ON = ("SEM", "Affiliate")
# Carry-over per day: search converts at once, display and social linger.
ADSTOCK_ALPHA = (0.25, 0.6, 0.45, 0.1, 0.35)
ADSTOCK_MAX_LAG_DAYS = 21
SPEND_SHARE = (0.35, 0.2, 0.2, 0.1, 0.15)  # of the planned media budget
# Saturation scale k_c relative to the channel's mean spend on its active days: below
# one, the channel is already far into diminishing returns.
SATURATION_SCALE = (1.2, 0.8, 1.5, 2.5, 0.7)
# Relative ceiling beta_c (customers per day per unit of the media scale): different
# efficiencies, so the best split is not the current one.
RESPONSE_CEILING = (1.0, 0.55, 1.1, 0.35, 0.5)
MEDIA_SHARE = 0.4  # of the window's new customers, at the planned spend
PROMOTION_LIFT = 0.5  # sale days: baseline signups x 1.5
COST_PER_NEW_CUSTOMER = 45.0  # planned media dollars per media-driven new customer
CPM = (9.0, 3.0, 6.0, 4.0, 25.0)  # dollars per thousand impressions
CLICK_RATE = (0.05, 0.004, 0.008, 0.02, 0.01)
SPEND_NOISE = 0.15
LIFT_TEST_DAYS = 28  # a 4-week geo holdout per channel
LIFT_TEST_GEO_SHARE = 0.5  # of the market where the channel goes dark
LIFT_TEST_MISMATCH = 1.25  # synthetic control's error on top of the Poisson noise
LIFT_TEST_MARGIN_DAYS = 56  # no test in the first 8 weeks (adstock warm-up)
LIFT_TEST_HOLDOUT_DAYS = 70  # nor in the last 10 weeks (the model's holdout)


def promotion_days(days: np.ndarray) -> np.ndarray:
    """1.0 on the sale days (``days`` as datetime64[D]), else 0.0. The dbt mart
    ``media_mix_daily`` computes the same calendar (``tests/mmm`` checks they agree)."""
    months = days.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    sale = (
        ((month == 11) & (day >= 24))
        | ((month == 12) & (day >= 26))
        | ((month == 1) & (day <= 3))
        | ((month == 7) & (day <= 7))
    )
    return sale.astype(float)


def geometric_adstock(spend: np.ndarray, alpha: float, max_lag: int = ADSTOCK_MAX_LAG_DAYS) -> np.ndarray:
    """Normalised geometric carry-over along axis 0: weights alpha^l / sum(alpha^l)."""
    weights = alpha ** np.arange(max_lag + 1)
    weights /= weights.sum()
    out = np.zeros_like(spend, dtype=float)
    for lag, weight in enumerate(weights):
        out[lag:] += weight * spend[: spend.shape[0] - lag]
    return out


@dataclass(frozen=True)
class MediaWorld:
    days: np.ndarray  # datetime64[D], the window
    spend: np.ndarray  # (day, channel) dollars
    impressions: np.ndarray  # (day, channel)
    clicks: np.ndarray  # (day, channel)
    adstock: np.ndarray  # (day, channel)
    contribution: np.ndarray  # (day, channel) expected new customers caused
    baseline: np.ndarray  # (day,) expected new customers without media, promotions included
    promotion: np.ndarray  # (day,) 1 on sale days
    alpha: np.ndarray  # (channel,)
    saturation_k: np.ndarray  # (channel,) dollars per day
    beta: np.ndarray  # (channel,) customers per day at full saturation

    @property
    def expected_new_customers(self) -> np.ndarray:
        return self.baseline + self.contribution.sum(axis=1)

    def true_roi(self) -> np.ndarray:
        """New customers per dollar over the window, per channel (contribution / spend)."""
        return self.contribution.sum(axis=0) / self.spend.sum(axis=0)

    def true_daily_outcome(self, daily_spend: np.ndarray) -> float:
        """Expected media-driven new customers per day at a constant daily spend per channel
        (steady state: adstock of a constant is the constant)."""
        daily_spend = np.asarray(daily_spend, dtype=float)
        return float((self.beta * -np.expm1(-daily_spend / self.saturation_k)).sum())

    def _lift_design(self, seed: int) -> list[tuple[int, int]]:
        """(channel index, first day index) of each channel's test; a channel that is never
        on for LIFT_TEST_DAYS in a row inside the allowed days gets none."""
        rng = np.random.Generator(np.random.PCG64([seed, MEDIA_STREAM, 2]))
        n_days = self.days.size
        design = []
        for c in range(len(PAID_CHANNELS)):
            on = self.spend[:, c] > 0
            starts = [d for d in range(LIFT_TEST_MARGIN_DAYS,
                                       n_days - LIFT_TEST_HOLDOUT_DAYS - LIFT_TEST_DAYS)
                      if (self.days[d].astype("datetime64[D]").astype(object).weekday() == 0)
                      and on[d:d + LIFT_TEST_DAYS].all()]
            if starts:
                design.append((c, int(starts[rng.integers(len(starts))])))
        return design

    def true_lift_effects(self, seed: int) -> list[dict]:
        """Per test: channel, days, the spend removed market-wide and the TRUE incremental
        new customers (negative), its standard error, and the noisy measurement."""
        rng = np.random.Generator(np.random.PCG64([seed, MEDIA_STREAM, 3]))
        out = []
        for c, first in self._lift_design(seed):
            window = slice(first, first + LIFT_TEST_DAYS)
            dark = self.spend[:, c].copy()
            dark[window] = 0.0
            adstock = geometric_adstock(dark, self.alpha[c])
            contribution = self.beta[c] * -np.expm1(-adstock / self.saturation_k[c])
            effect = float(contribution[window].sum() - self.contribution[window, c].sum())
            g = LIFT_TEST_GEO_SHARE
            expected = float(self.expected_new_customers[window].sum())
            se = LIFT_TEST_MISMATCH * np.sqrt(expected * g / (1 - g)) / g
            out.append({
                "test_id": f"lift-{PAID_CHANNELS[c].lower()}-{self.days[first]}",
                "channel": PAID_CHANNELS[c], "start_date": self.days[first],
                "end_date": self.days[first + LIFT_TEST_DAYS - 1],
                "spend_change": -float(np.round(self.spend[window, c], 2).sum()),
                "true_effect": effect, "standard_error": float(se),
                "incremental_new_customers": effect + float(se * rng.standard_normal())})
        return out

    def lift_test_table(self, seed: int) -> pa.Table:
        """The readouts (raw.media_lift_tests): measurements, not the truth."""
        tests = self.true_lift_effects(seed)
        columns = RAW_TABLES["media_lift_tests"]
        values = {name: np.array([t[name] for t in tests]) for name in columns}
        for name in ("start_date", "end_date"):
            values[name] = values[name].astype("datetime64[D]")
        return pa.Table.from_pydict(values, schema=arrow_schema(columns))

    def spend_table(self) -> pa.Table:
        n_days, n_channels = self.spend.shape
        return pa.Table.from_pydict(
            {
                "date": np.repeat(self.days, n_channels),
                "channel": np.tile(np.array(PAID_CHANNELS), n_days),
                "spend": np.round(self.spend, 2).ravel(),
                "impressions": self.impressions.ravel().astype(np.int32),
                "clicks": self.clicks.ravel().astype(np.int32),
            },
            schema=arrow_schema(RAW_TABLES["media_spend"]),
        )

    def truth_table(self) -> pa.Table:
        n_days, n_channels = self.spend.shape
        return pa.Table.from_pydict(
            {
                "date": np.repeat(self.days, n_channels),
                "channel": np.tile(np.array(PAID_CHANNELS), n_days),
                "spend": np.round(self.spend, 2).ravel(),
                "adstocked_spend": self.adstock.ravel(),
                "contribution": self.contribution.ravel(),
                "baseline": np.repeat(self.baseline, n_channels),
                "promotion": np.repeat(self.promotion, n_channels),
                "adstock_alpha": np.tile(self.alpha, n_days),
                "saturation_k": np.tile(self.saturation_k, n_days),
                "beta": np.tile(self.beta, n_days),
            },
            schema=arrow_schema(MEDIA_TRUTH_COLUMNS),
        )


def _flighted(rng: np.random.Generator, n_days: int) -> np.ndarray:
    """Relative daily level of a flighted channel: flights of 14-56 days at levels
    0.5-1.6, pauses of 7-35 days at zero."""
    level = np.zeros(n_days)
    day = int(rng.integers(0, 21))
    while day < n_days:
        length = int(rng.integers(14, 57))
        level[day : day + length] = rng.uniform(0.5, 1.6)
        day += length + int(rng.integers(7, 36))
    return level


def _always_on(rng: np.random.Generator, n_days: int, shift_every: int, low: float,
               high: float) -> np.ndarray:
    """Relative daily level of an always-on channel: a new budget level every
    ``shift_every`` days or so."""
    level = np.empty(n_days)
    day = 0
    while day < n_days:
        length = int(rng.integers(shift_every // 2, shift_every * 3 // 2 + 1))
        level[day : day + length] = rng.uniform(low, high)
        day += length
    return level


def simulate_media(seed: int, start: date, end: date, baseline_shape: np.ndarray,
                   expected_customers: float) -> MediaWorld:
    """The media world of the window [start, end]. ``baseline_shape`` (one value per day)
    is the signup profile without media; ``expected_customers`` the window's expected
    number of new customers, which sets every scale (spend, ceilings) in proportion."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    n_days = days.size
    if baseline_shape.shape != (n_days,):
        raise ValueError(f"baseline_shape has {baseline_shape.shape} values, expected {n_days}")
    rng = np.random.Generator(np.random.PCG64([seed, MEDIA_STREAM]))
    levels = np.column_stack([
        _always_on(rng, n_days, 90, 0.6, 1.5) if name == "SEM"
        else _always_on(rng, n_days, 60, 0.8, 1.2) if name in ALWAYS_ON
        else _flighted(rng, n_days)
        for name in PAID_CHANNELS
    ])
    levels /= levels.mean(axis=0)  # each channel: mean level one over the window
    media_customers = MEDIA_SHARE * expected_customers
    budget_per_day = COST_PER_NEW_CUSTOMER * media_customers / n_days
    noise = np.exp(SPEND_NOISE * rng.standard_normal(levels.shape) - SPEND_NOISE**2 / 2)
    spend = budget_per_day * np.asarray(SPEND_SHARE) * levels * noise
    impressions = rng.poisson(spend / np.asarray(CPM) * 1000 * np.exp(0.1 * rng.standard_normal(levels.shape)))
    clicks = rng.binomial(impressions, np.asarray(CLICK_RATE))

    alpha = np.asarray(ADSTOCK_ALPHA)
    adstock = np.column_stack([geometric_adstock(spend[:, c], alpha[c]) for c in range(len(PAID_CHANNELS))])
    active_mean = np.array([spend[spend[:, c] > 0, c].mean() for c in range(len(PAID_CHANNELS))])
    saturation_k = np.asarray(SATURATION_SCALE) * active_mean
    shape = -np.expm1(-adstock / saturation_k)
    ceiling = np.asarray(RESPONSE_CEILING)
    # Scale the ceilings so media brings MEDIA_SHARE of the expected customers.
    beta = ceiling * media_customers / (shape * ceiling).sum()
    contribution = shape * beta
    promotion = promotion_days(days)
    lifted = baseline_shape * (1 + PROMOTION_LIFT * promotion)
    baseline = lifted * (expected_customers - media_customers) / lifted.sum()
    return MediaWorld(days=days, spend=spend, impressions=impressions, clicks=clicks,
                      adstock=adstock, contribution=contribution, baseline=baseline,
                      promotion=promotion, alpha=alpha, saturation_k=saturation_k, beta=beta)


def draw_daily_new_customers(world: MediaWorld, total: int, seed: int) -> np.ndarray:
    """``total`` new customers spread over the days in proportion to the expected rate (what
    the generator's signups do, without simulating the customers): for benchmarks at sizes
    the full generator would take long to make."""
    rng = np.random.Generator(np.random.PCG64([seed, MEDIA_STREAM, 1]))
    rate = world.expected_new_customers
    return rng.multinomial(total, rate / rate.sum())
