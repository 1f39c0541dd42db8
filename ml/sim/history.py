"""Synthetic retail history with a known ground truth.

Every customer gets latent traits and then lives in continuous time (days since ``start``):

* **Purchases** form a Poisson process. Its rate is the customer's base rate (gamma across
  customers) x the calendar (weekly pattern, mild January/summer swings) plus a
  November/December peak scaled by the customer's own seasonal amplitude, plus a
  new-customer boost that decays over the first weeks, plus *bursts*: each marketing
  touch may trigger one extra order within 7 days, far more often when clicked, with a
  chance set by channel x the customer's responsiveness to it x basket value. Most
  customers who sign up inside the window place a first order at signup.
* **Dropout** is silent: a constant hazard (gamma across customers) plus an early hazard
  that fades over the first two months (the one-time buyers). After dropout there are no
  orders, sessions fall to a trickle and clicks drop, but touches go on (marketers do not
  know).
* **Sessions** come at a rate proportional to the purchase rate (noisily), from clicks,
  and before every web/app order; cart adds follow an engagement trait.
* **Orders** get a value around the customer's lognormal basket, discounts (more after
  CRM clicks, at signup and in the holidays), a status drawn from the customer's return
  and cancel propensities, and 1-5 lines whose price x quantity sums to revenue + discount.
  Each line's category follows the customer's category taste; its product comes from
  ``ml.sim.items`` (latent taste factors, launches and retirements, popularity drift,
  staples, exploration), which also writes the evaluation-only ``eval.item_oracle``.
* **Retention campaigns** (``ml.sim.campaigns``): past randomised tests contact a sample
  of the base; contact may trigger a save order, postpone a coming dropout or, for a few
  contact-averse customers, end the relationship. ``raw.campaign_assignments`` records
  who was assigned (treated or control); ``eval.campaign_effects`` holds each assigned
  customer's true P(retained) under both arms, evaluation only.

All events lie in ``[start, end 23:59:59]`` and after the customer's signup. Because every
purchase component is a Poisson process thinned by independent marks, the probability of
no completed order in a window given the latent state has a closed form:
``eval.oracle_labels`` holds it for every customer and month start and each horizon in
``ml.schema.ORACLE_HORIZONS``, evaluation only.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.schema import (
    CAMPAIGN_EFFECTS_TABLE,
    ITEM_ORACLE_COLUMNS,
    ITEM_ORACLE_HORIZON_DAYS,
    ITEM_ORACLE_SNAPSHOTS,
    ITEM_ORACLE_TABLE,
    MEDIA_TRUTH_TABLE,
    ORACLE_COLUMNS,
    ORACLE_HORIZONS,
    ORACLE_TABLE,
    RAW_TABLES,
    arrow_schema,
    oracle_column,
)
from ml.settings import EVAL_SCHEMA, RAW_SCHEMA
from ml.sim import campaigns as retention
from ml.sim import items, media
from ml.sim.items import PRODUCTS_PER_CATEGORY
from ml.warehouse import DuckDBWarehouse, get_warehouse

ORACLE_DAYS = max(ORACLE_HORIZONS)  # the oracle's longest horizon, which it looks past the end

# Customers are simulated in fixed-size chunks (bounded memory); the chunk size is part
# of the random stream, so it is a constant, not a knob.
CHUNK_CUSTOMERS = 10_000

# --- population -------------------------------------------------------------------------
PRE_START_SHARE = 0.3  # customers who signed up before the window
PRE_START_SPAN_DAYS = 730
SIGNUP_GROWTH = 1.0  # signups per day grow by this fraction over the window
ACQUISITION_CHANNELS = ("SEM", "SEO", "CRM", "Display", "Direct", "Referral")
ACQUISITION_SHARES = (0.25, 0.22, 0.08, 0.15, 0.18, 0.12)
ACQUISITION_RATE = (1.0, 1.05, 1.1, 0.8, 1.1, 1.25)  # x purchase rate
ACQUISITION_HAZARD = (1.1, 0.95, 0.9, 1.4, 0.9, 0.75)  # x dropout hazards
REGIONS = ("North", "South", "East", "West", "Central")
REGION_SHARES = (0.22, 0.2, 0.18, 0.25, 0.15)
REGION_BASKET = (1.0, 0.9, 1.05, 1.1, 0.95)

# --- purchases and dropout (rates per day) ----------------------------------------------
MEAN_PURCHASE_RATE = 1 / 55
PURCHASE_RATE_SHAPE = 0.9  # gamma shape: heavy-tailed frequencies
NEW_CUSTOMER_BOOST = 1.0  # extra rate right after signup, as a multiple of the base rate
NEW_CUSTOMER_BOOST_DAYS = 30.0  # e-folding time of that boost
FIRST_ORDER_AT_SIGNUP = 0.65
MEAN_DROPOUT_HAZARD = 1 / 900
DROPOUT_HAZARD_SHAPE = 1.5
MEAN_EARLY_HAZARD = 0.006
EARLY_HAZARD_DAYS = 60.0
ENGAGEMENT_ON_RATE = 0.35  # log-scale loadings of the shared engagement trait
ENGAGEMENT_ON_HAZARD = -0.3
ENGAGEMENT_ON_RESPONSE = 0.3

# --- marketing ---------------------------------------------------------------------------
TOUCH_CHANNELS = ("SEM", "SEO", "CRM", "Display", "Social")
TOUCHES_PER_YEAR = (2.7, 1.7, 12.0, 7.0, 3.5)  # average exposures of one customer
CRM_OPT_IN = 0.8
CLICK_RATE = (0.16, 0.12, 0.08, 0.01, 0.025)  # for a typical customer
CLICK_CONVERSION = (0.35, 0.30, 0.25, 0.15, 0.12)  # chance a click triggers an order
VIEW_CONVERSION = (0.0, 0.0, 0.01, 0.004, 0.003)  # same, for an unclicked touch
OWN_CHANNEL_RESPONSE = 1.6  # customers respond more to the channel that acquired them
DROPPED_CLICK_FACTOR = 0.3  # clicks after dropout are rarer
TOUCH_COST = (0.0, 0.002, 0.05, 0.01, 0.02)  # per touch; SEM pays per click instead
SEM_COST_PER_CLICK = 0.8
BURST_DELAY_DAYS = 7.0  # a triggered order lands within this many days of the touch
BURST_DELAY_SCALE = 1.5  # truncated exponential delay
CAMPAIGN_THEMES = (
    ("brand", "generic", "shopping"),
    ("organic",),
    ("newsletter", "promo", "new-arrivals"),
    ("retargeting", "prospecting"),
    ("prospecting", "retargeting"),
)
HOLIDAY_THEME = "holiday"
_MAX_THEMES = max(len(themes) for themes in CAMPAIGN_THEMES)

# --- sessions ----------------------------------------------------------------------------
SESSIONS_PER_ORDER = 2.5  # organic sessions per expected order while active
BASE_SESSION_RATE = 0.01
DORMANT_SESSION_SHARE = 0.08  # session rate after dropout, relative to before
SESSION_SOURCES = ("Direct", "SEO", "Referral", "App", "SEM", "CRM", "Display", "Social")
WEB_SOURCE_SHARES = (0.5, 0.35, 0.15)  # Direct, SEO, Referral
TOUCH_SOURCE = tuple(SESSION_SOURCES.index(channel) for channel in TOUCH_CHANNELS)  # clicks

# --- orders and items --------------------------------------------------------------------
ORDER_STATUSES = ("completed", "returned", "cancelled")
ORDER_CHANNELS = ("web", "app", "store")
MEDIAN_BASKET = 55.0
CATEGORIES = ("Electronics", "Home", "Fashion", "Beauty", "Sports", "Toys", "Books", "Grocery")
CATEGORY_POPULARITY = (0.1, 0.16, 0.2, 0.12, 0.1, 0.08, 0.1, 0.14)
CATEGORY_MEDIAN_PRICE = (120.0, 40.0, 35.0, 22.0, 45.0, 28.0, 14.0, 8.0)
CATEGORY_EXTRA_QUANTITY = (0.05, 0.2, 0.25, 0.4, 0.15, 0.25, 0.2, 1.0)  # Poisson mean
TASTE_CONCENTRATION = 4.0  # Dirichlet total: low = customers stick to few categories
DISCOUNT_RATES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
DISCOUNT_RATE_SHARES = (0.25, 0.3, 0.2, 0.12, 0.08, 0.05)

HOURLY_ACTIVITY = (
    0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.2, 1.3,
    1.4, 1.3, 1.2, 1.2, 1.2, 1.3, 1.5, 1.7, 1.8, 1.6, 1.1, 0.6,
)  # fmt: skip
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate`` wrote: rows per "schema.table", the window and the cost."""

    customers: int
    seed: int
    start: date
    end: date
    row_counts: dict[str, int]
    seconds: float
    peak_rss_mb: float  # peak resident memory of this process so far


# --- calendar ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    """A daily intensity profile; time is continuous, in days since ``start``."""

    weights: np.ndarray
    cumulative: np.ndarray  # cumulative[d] = sum of weights before day d

    @classmethod
    def of(cls, weights: np.ndarray) -> _Profile:
        return cls(weights, np.concatenate([[0.0], np.cumsum(weights)]))

    def _at(self, t: np.ndarray) -> np.ndarray:
        day = np.clip(np.floor(t).astype(np.int64), 0, self.weights.size - 1)
        return self.cumulative[day] + (t - day) * self.weights[day]

    def _time_of(self, mass: np.ndarray) -> np.ndarray:
        day = np.searchsorted(self.cumulative, mass, side="right") - 1
        day = np.clip(day, 0, self.weights.size - 1)
        return day + (mass - self.cumulative[day]) / self.weights[day]

    def draw(self, rng: np.random.Generator, size: int, lo: float, hi: float) -> np.ndarray:
        """``size`` times with density proportional to the profile on [lo, hi)."""
        bounds = self._at(np.array([lo, hi], dtype=float))
        t = self._time_of(bounds[0] + rng.random(size) * (bounds[1] - bounds[0]))
        return np.clip(t, lo, np.nextafter(hi, -np.inf))

    def sample(
        self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Poisson process with intensity ``scale[i] * weights`` on ``[lo[i], hi[i])``,
        for every row i: (row index, time) of each event."""
        hi = np.maximum(hi, lo)
        mass_lo, mass_hi = self._at(lo), self._at(hi)
        owner = np.repeat(np.arange(lo.size), rng.poisson(scale * (mass_hi - mass_lo)))
        mass = mass_lo[owner] + rng.random(owner.size) * (mass_hi - mass_lo)[owner]
        t = self._time_of(mass)
        return owner, np.clip(t, lo[owner], np.nextafter(hi[owner], -np.inf))


@dataclass(frozen=True)
class _Calendar:
    start: date
    n_days: int  # days in [start, end]
    epoch_day: int  # start, in days since 1970-01-01
    holiday: np.ndarray  # November/December peak shape, ~0 elsewhere
    holiday_campaign: np.ndarray  # bool: 15 Nov - 24 Dec
    month_index: np.ndarray  # months since start's month
    signups: _Profile
    orders_base: _Profile
    orders_peak: _Profile  # scaled by each customer's seasonal amplitude
    sessions: _Profile
    touches: tuple[_Profile, ...]  # one per touch channel, mean 1 over the window
    as_of_days: np.ndarray  # oracle snapshot days (first of month, start < d <= end + 1)
    future_bursts: np.ndarray  # (as_of, channel, day in horizon): see _calendar
    window_start: float = 0.0  # events are simulated from here (> 0: ml.sim.advance's tail)


def _gauss(x: np.ndarray, width_before: float, width_after: float) -> np.ndarray:
    width = np.where(x < 0, width_before, width_after)
    return np.exp(-0.5 * (x / width) ** 2)


def _burst_delay_cdf(days: np.ndarray) -> np.ndarray:
    x = np.clip(days, 0.0, BURST_DELAY_DAYS)
    return -np.expm1(-x / BURST_DELAY_SCALE) / -np.expm1(-BURST_DELAY_DAYS / BURST_DELAY_SCALE)


def _calendar(start: date, end: date, normalise_days: int | None = None,
              snapshot_days: np.ndarray | None = None) -> _Calendar:
    """``normalise_days``: the days whose mean rate is 1 (default: the window's; a
    continuation keeps the original window's, so its rates continue unchanged).
    ``snapshot_days``: snapshot days other than the month starts (for the truth of a contact
    on another day)."""
    n_days = (end - start).days + 1
    grid = n_days + 1 + ORACLE_DAYS + 1  # the oracle looks past the end
    days = np.datetime64(start, "D") + np.arange(grid)
    epoch = days.astype(np.int64)
    weekday = (epoch + 3) % 7  # Monday = 0
    months = days.astype("datetime64[M]")
    month_of_year = months.astype(np.int64) % 12 + 1
    day_of_month = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    year_start = days.astype("datetime64[Y]").astype("datetime64[M]")

    def distance(year_offset: int, month: int, day: int) -> np.ndarray:
        anchor = (year_start + (12 * year_offset + month - 1)).astype("datetime64[D]") + (day - 1)
        return (days - anchor).astype(np.int64).astype(float)

    holiday = 1e-3
    for year_offset in (-1, 0):
        holiday = holiday + 1.3 * _gauss(distance(year_offset, 11, 27), 6, 6)  # Black Friday
        holiday = holiday + 1.0 * _gauss(distance(year_offset, 12, 16), 10, 4)  # Christmas
    yearly = 1.0
    for year_offset in (-1, 0, 1):
        yearly = yearly + 0.12 * _gauss(distance(year_offset, 1, 3), 5, 5)  # January sales
        yearly = yearly - 0.1 * _gauss(distance(year_offset, 8, 1), 25, 25)  # summer lull

    def normalised(weights: np.ndarray) -> np.ndarray:
        return weights / weights[:normalise_days or n_days].mean()

    order_week = np.array([1.04, 1.0, 0.98, 0.98, 0.97, 0.95, 1.08])[weekday]
    orders_base = normalised(order_week * yearly)
    session_week = np.array([1.0, 0.98, 0.97, 0.98, 0.95, 1.05, 1.12])[weekday]
    crm_week = np.array([0.6, 1.6, 0.8, 1.6, 0.8, 0.3, 0.3])[weekday]
    social_week = np.array([0.9, 0.9, 0.9, 0.95, 1.0, 1.2, 1.25])[weekday]
    touch_weights = (
        orders_base * (1 + 0.8 * holiday),  # SEM follows shopping intent
        orders_base * (1 + 0.4 * holiday),  # SEO
        crm_week * (1 + 0.6 * holiday),  # CRM sends on Tuesdays and Thursdays
        1 + 0.5 * holiday,  # Display
        social_week * (1 + 0.5 * holiday),  # Social
    )
    touches = tuple(_Profile.of(normalised(w)) for w in touch_weights)

    # P(a burst lands L days after the day of its touch), the touch uniform within its day.
    within_day = (np.arange(4000) + 0.5) / 4000
    lags = np.arange(int(BURST_DELAY_DAYS) + 1)
    burst_delay_by_day = np.array(
        [
            np.mean(_burst_delay_cdf(lag + 1 - within_day) - _burst_delay_cdf(lag - within_day))
            for lag in lags
        ]
    )

    month_starts = np.arange(months[0] + 1, months[n_days] + 1).astype("datetime64[D]")
    as_of_days = (month_starts - np.datetime64(start, "D")).astype(np.int64)
    as_of_days = as_of_days[as_of_days <= n_days] if snapshot_days is None else snapshot_days
    # Expected bursts on day k of the horizon from touches on or after the as_of day,
    # per unit of touch rate x conversion: the realised touches before as_of are added
    # per customer.
    horizon = np.arange(ORACLE_DAYS)
    future_bursts = np.zeros((as_of_days.size, len(TOUCH_CHANNELS), ORACLE_DAYS))
    for lag, share in zip(lags, burst_delay_by_day, strict=True):
        touch_day = as_of_days[:, None] + horizon[None, :] - lag
        counted = horizon[None, :] >= lag
        for channel, profile in enumerate(touches):
            future_bursts[:, channel, :] += np.where(
                counted, share * profile.weights[np.maximum(touch_day, 0)], 0.0
            )

    return _Calendar(
        start=start,
        n_days=n_days,
        epoch_day=int(epoch[0]),
        holiday=holiday,
        holiday_campaign=((month_of_year == 11) & (day_of_month >= 15))
        | ((month_of_year == 12) & (day_of_month <= 24)),
        month_index=(months - months[0]).astype(np.int64),
        signups=_Profile.of((1 + SIGNUP_GROWTH * np.arange(grid) / n_days) * (1 + 0.3 * holiday)),
        orders_base=_Profile.of(orders_base),
        orders_peak=_Profile.of(orders_base * holiday),
        sessions=_Profile.of(normalised(session_week * yearly * (1 + 0.5 * holiday))),
        touches=touches,
        as_of_days=as_of_days,
        future_bursts=future_bursts,
    )


# --- customers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Customers:
    signup: np.ndarray  # days since start; negative: before the window
    dropout: np.ndarray  # days since start when the customer silently stops buying
    region: np.ndarray
    acquisition: np.ndarray
    purchase_rate: np.ndarray  # base orders per day while active
    seasonal_amplitude: np.ndarray
    dropout_hazard: np.ndarray  # per day, constant
    early_hazard: np.ndarray  # per day at signup, fading over EARLY_HAZARD_DAYS
    return_share: np.ndarray
    cancel_share: np.ndarray
    basket: np.ndarray  # typical list value of an order
    taste: np.ndarray  # (customer, category) shares
    order_channel_shares: np.ndarray  # (customer, web/app/store)
    touch_rate: np.ndarray  # (customer, channel) touches per day
    click_prob: np.ndarray  # (customer, channel) while active
    click_conversion: np.ndarray  # (customer, channel) P(burst | clicked)
    view_conversion: np.ndarray  # (customer, channel) P(burst | not clicked)
    session_rate: np.ndarray
    cart_propensity: np.ndarray

    @property
    def size(self) -> int:
        return self.signup.size

    @property
    def completed_share(self) -> np.ndarray:
        return 1.0 - self.return_share - self.cancel_share

    def take(self, rows: slice) -> _Customers:
        return _Customers(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def _lognormal(rng: np.random.Generator, sigma: float, size) -> np.ndarray:
    """Mean-one lognormal noise."""
    return np.exp(sigma * rng.standard_normal(size) - sigma**2 / 2)


def _draw_customers(rng: np.random.Generator, n: int, cal: _Calendar) -> _Customers:
    before = rng.random(n) < PRE_START_SHARE
    signup = np.sort(
        np.concatenate(
            [
                -rng.random(int(before.sum())) * PRE_START_SPAN_DAYS,
                cal.signups.draw(rng, n - int(before.sum()), 0.0, float(cal.n_days)),
            ]
        )
    )  # customer ids follow signup order
    engagement = rng.standard_normal(n)
    acquisition = rng.choice(len(ACQUISITION_CHANNELS), n, p=ACQUISITION_SHARES)
    region = rng.choice(len(REGIONS), n, p=REGION_SHARES)

    def loading(weight: float) -> np.ndarray:
        return np.exp(weight * engagement - weight**2 / 2)

    purchase_rate = (
        MEAN_PURCHASE_RATE
        * rng.gamma(PURCHASE_RATE_SHAPE, 1 / PURCHASE_RATE_SHAPE, n)
        * loading(ENGAGEMENT_ON_RATE)
        * np.take(ACQUISITION_RATE, acquisition)
    )
    hazard_factor = np.take(ACQUISITION_HAZARD, acquisition)
    dropout_hazard = (
        MEAN_DROPOUT_HAZARD
        * rng.gamma(DROPOUT_HAZARD_SHAPE, 1 / DROPOUT_HAZARD_SHAPE, n)
        * loading(ENGAGEMENT_ON_HAZARD)
        * hazard_factor
    )
    early_hazard = MEAN_EARLY_HAZARD * rng.exponential(1.0, n) * hazard_factor
    # Competing risks: the early one has a finite total hazard, so it may never strike.
    early_total = early_hazard * EARLY_HAZARD_DAYS
    early_draw = rng.exponential(1.0, n)
    early_dropout = np.full(n, np.inf)
    strikes = early_draw < early_total
    early_dropout[strikes] = -EARLY_HAZARD_DAYS * np.log1p(
        -early_draw[strikes] / early_total[strikes]
    )
    dropout = signup + np.minimum(rng.exponential(1.0, n) / dropout_hazard, early_dropout)

    basket = MEDIAN_BASKET * np.exp(0.55 * rng.standard_normal(n)) * np.take(REGION_BASKET, region)
    response = (
        _lognormal(rng, 0.6, (n, len(TOUCH_CHANNELS))) * loading(ENGAGEMENT_ON_RESPONSE)[:, None]
    )
    for channel, name in enumerate(TOUCH_CHANNELS):
        if name in ACQUISITION_CHANNELS:
            own = acquisition == ACQUISITION_CHANNELS.index(name)
            response[own, channel] *= OWN_CHANNEL_RESPONSE
    touch_rate = (
        np.asarray(TOUCHES_PER_YEAR) / 365.0 * rng.gamma(2.0, 0.5, (n, len(TOUCH_CHANNELS)))
    )
    touch_rate[:, TOUCH_CHANNELS.index("CRM")] *= rng.random(n) < CRM_OPT_IN
    for name in ("SEM", "SEO"):  # engaged customers search for the brand more
        touch_rate[:, TOUCH_CHANNELS.index(name)] *= loading(0.3)

    return _Customers(
        signup=signup,
        dropout=dropout,
        region=region,
        acquisition=acquisition,
        purchase_rate=purchase_rate,
        seasonal_amplitude=rng.gamma(1.5, 1 / 1.5, n),
        dropout_hazard=dropout_hazard,
        early_hazard=early_hazard,
        return_share=rng.beta(1.2, 13.8, n),
        cancel_share=rng.beta(2.0, 48.0, n),
        basket=basket,
        taste=rng.dirichlet(TASTE_CONCENTRATION * np.asarray(CATEGORY_POPULARITY), n),
        order_channel_shares=rng.dirichlet((4.0, 3.0, 1.5), n),
        touch_rate=touch_rate,
        click_prob=-np.expm1(-np.asarray(CLICK_RATE) * response),
        click_conversion=-np.expm1(
            -np.asarray(CLICK_CONVERSION) * response**0.8 * (basket[:, None] / MEDIAN_BASKET) ** 0.3
        ),
        view_conversion=-np.expm1(-np.asarray(VIEW_CONVERSION) * response),
        session_rate=(SESSIONS_PER_ORDER * purchase_rate + BASE_SESSION_RATE)
        * _lognormal(rng, 0.4, n),
        cart_propensity=loading(0.3) * _lognormal(rng, 0.3, n),
    )


def _catalogue(rng: np.random.Generator) -> np.ndarray:
    """Unit prices, (category, product), ascending within each category."""
    log_prices = np.log(CATEGORY_MEDIAN_PRICE)[:, None] + 0.75 * np.sort(
        rng.standard_normal((len(CATEGORIES), PRODUCTS_PER_CATEGORY)), axis=1
    )
    return np.maximum(np.round(np.exp(log_prices) - 0.01, 0) + 0.99, 0.99)


# --- simulation --------------------------------------------------------------------------


def _choose_rows(rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """One category index per row of a (rows, k) matrix of shares."""
    cumulative = np.cumsum(shares, axis=1)
    pick = rng.random(shares.shape[0])[:, None] * cumulative[:, -1:]
    return np.minimum((pick > cumulative).sum(axis=1), shares.shape[1] - 1)


def _decaying_sample(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    origin: np.ndarray,
    scale: np.ndarray,
    days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson process with intensity ``scale * exp(-(t - origin) / days)`` on [lo, hi)."""
    hi = np.maximum(hi, lo)
    decay_lo, decay_hi = np.exp(-(lo - origin) / days), np.exp(-(hi - origin) / days)
    owner = np.repeat(np.arange(lo.size), rng.poisson(scale * days * (decay_lo - decay_hi)))
    u = rng.random(owner.size)
    t = origin[owner] - days * np.log(decay_lo[owner] - u * (decay_lo - decay_hi)[owner])
    return owner, np.clip(t, lo[owner], np.nextafter(hi[owner], -np.inf))


def _timestamps(cal: _Calendar, t: np.ndarray) -> np.ndarray:
    """Days since start -> microseconds since the epoch. Time of day follows HOURLY_ACTIVITY
    through a monotone map, so the order of events within a day is kept."""
    day = np.floor(t)
    hourly = np.asarray(HOURLY_ACTIVITY) / np.sum(HOURLY_ACTIVITY)
    cumulative = np.concatenate([[0.0], np.cumsum(hourly)])
    fraction = t - day
    hour = np.clip(np.searchsorted(cumulative, fraction, side="right") - 1, 0, 23)
    seconds = (hour + (fraction - cumulative[hour]) / hourly[hour]) * 3600.0
    micros = np.minimum(np.floor(seconds * 1e6).astype(np.int64), DAY_US - 1)
    return (cal.epoch_day + day.astype(np.int64)) * DAY_US + micros


@dataclass(frozen=True)
class _Touches:
    customer: np.ndarray  # row within the chunk
    t: np.ndarray
    channel: np.ndarray
    clicked: np.ndarray
    burst_at: np.ndarray  # time of the order it triggers, NaN if none


def _simulate_touches(rng: np.random.Generator, c: _Customers, cal: _Calendar) -> _Touches:
    lo, hi = np.maximum(c.signup, cal.window_start), np.full(c.size, float(cal.n_days))
    owners, times, channels = [], [], []
    for channel, profile in enumerate(cal.touches):  # touches go on after dropout
        owner, t = profile.sample(rng, lo, hi, c.touch_rate[:, channel])
        owners.append(owner)
        times.append(t)
        channels.append(np.full(owner.size, channel, dtype=np.int64))
    owner, t, channel = np.concatenate(owners), np.concatenate(times), np.concatenate(channels)
    order = np.lexsort((t, owner))
    owner, t, channel = owner[order], t[order], channel[order]

    active = t < c.dropout[owner]
    click_prob = c.click_prob[owner, channel] * np.where(active, 1.0, DROPPED_CLICK_FACTOR)
    clicked = rng.random(owner.size) < click_prob
    conversion = np.where(
        clicked, c.click_conversion[owner, channel], c.view_conversion[owner, channel]
    )
    triggered = active & (rng.random(owner.size) < conversion)
    u = rng.random(owner.size)
    delay = -BURST_DELAY_SCALE * np.log1p(u * np.expm1(-BURST_DELAY_DAYS / BURST_DELAY_SCALE))
    burst_at = t + delay
    lands = triggered & (burst_at < c.dropout[owner]) & (burst_at < cal.n_days)
    return _Touches(owner, t, channel, clicked, np.where(lands, burst_at, np.nan))


@dataclass(frozen=True)
class _Orders:
    customer: np.ndarray
    t: np.ndarray
    burst_channel: np.ndarray  # touch channel that triggered it, -1 if none
    burst_clicked: np.ndarray
    at_signup: np.ndarray
    channel: np.ndarray  # ORDER_CHANNELS index


def _save_orders(c: _Customers, cal: _Calendar, contacts: retention.Contacts):
    """(customer, time) of the save orders campaign contacts triggered that land while the
    customer is still active and inside the window."""
    at = contacts.save_at
    lands = ~np.isnan(at)
    lands[lands] = (at[lands] < c.dropout[contacts.customer[lands]]) & (at[lands] < cal.n_days)
    return contacts.customer[lands], at[lands]


def _simulate_orders(
    rng: np.random.Generator, c: _Customers, cal: _Calendar, touches: _Touches,
    save_orders: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0)),
) -> _Orders:
    lo, hi = np.maximum(c.signup, cal.window_start), np.minimum(c.dropout, float(cal.n_days))
    base = cal.orders_base.sample(rng, lo, hi, c.purchase_rate)
    peak = cal.orders_peak.sample(rng, lo, hi, c.purchase_rate * c.seasonal_amplitude)
    boost = _decaying_sample(
        rng, lo, hi, c.signup, c.purchase_rate * NEW_CUSTOMER_BOOST, NEW_CUSTOMER_BOOST_DAYS
    )
    # The first order at signup lands on the signup day, within half an hour.
    first = (c.signup >= cal.window_start) & (rng.random(c.size) < FIRST_ORDER_AT_SIGNUP)
    first_t = c.signup + rng.random(c.size) * np.minimum(1 / 48, np.ceil(c.signup) - c.signup)
    first &= first_t < c.dropout
    bursts = ~np.isnan(touches.burst_at)

    customer = np.concatenate(
        [base[0], peak[0], boost[0], save_orders[0], touches.customer[bursts],
         np.flatnonzero(first)]
    )
    t = np.concatenate(
        [base[1], peak[1], boost[1], save_orders[1], touches.burst_at[bursts], first_t[first]]
    )
    n_plain = base[0].size + peak[0].size + boost[0].size + save_orders[0].size
    burst_channel = np.concatenate(
        [np.full(n_plain, -1), touches.channel[bursts], np.full(first.sum(), -1)]
    )
    burst_clicked = np.concatenate(
        [np.zeros(n_plain, bool), touches.clicked[bursts], np.zeros(first.sum(), bool)]
    )
    at_signup = np.concatenate([np.zeros(n_plain + bursts.sum(), bool), np.ones(first.sum(), bool)])
    order = np.lexsort((t, customer))
    customer, burst_channel = customer[order], burst_channel[order]
    # Orders triggered by a touch are placed online.
    shares = c.order_channel_shares[customer]
    shares[burst_channel >= 0, ORDER_CHANNELS.index("store")] = 0.0
    return _Orders(
        customer,
        t[order],
        burst_channel,
        burst_clicked[order],
        at_signup[order],
        _choose_rows(rng, shares),
    )


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _labels(vocabulary: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    return pc.take(pa.array(vocabulary, pa.string()), pa.array(codes, pa.int64()))


def _table(table: str, columns: dict[str, object], contract: dict[str, str]) -> pa.Table:
    """An arrow table with exactly the contract's columns, in order, cast to its types."""
    if list(columns) != list(contract):
        raise AssertionError(f"{table}: columns {list(columns)} != contract {list(contract)}")
    schema = arrow_schema(contract)
    arrays = []
    for name, value in columns.items():
        array = value if isinstance(value, pa.Array) else pa.array(value)
        arrays.append(array.cast(schema.field(name).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _order_tables(
    rng: np.random.Generator,
    c: _Customers,
    cal: _Calendar,
    orders: _Orders,
    catalogue: np.ndarray,
    world: items.ItemWorld,
    shoppers: items.Shoppers,
    customer_ids: pa.Array,
    first_id: int,
) -> tuple[pa.Table, pa.Table]:
    n_orders = orders.customer.size
    owner = orders.customer
    holiday = cal.holiday[np.floor(orders.t).astype(np.int64)]
    target_value = (
        c.basket[owner] * _lognormal(rng, 0.4, n_orders) * (1 + 0.1 * np.minimum(holiday, 1.5))
    )
    u = rng.random(n_orders)
    status = np.select(
        [u < c.cancel_share[owner], u < c.cancel_share[owner] + c.return_share[owner]], [2, 1], 0
    )
    from_burst = orders.burst_channel >= 0
    crm_burst = orders.burst_channel == TOUCH_CHANNELS.index("CRM")
    discount_prob = np.select(
        [crm_burst, from_burst, orders.at_signup], [0.55, 0.3, 0.35], 0.12
    ) + 0.15 * (holiday > 0.3)
    discount_rate = np.where(
        rng.random(n_orders) < discount_prob,
        np.take(DISCOUNT_RATES, rng.choice(len(DISCOUNT_RATES), n_orders, p=DISCOUNT_RATE_SHARES)),
        0.0,
    )

    # 1-5 lines, more for larger target values; each line's product follows the item world
    # (at the customer's price level), so revenue + discount is exactly sum price x quantity.
    lines_per_order = 1 + np.minimum(rng.poisson(0.7 * np.sqrt(target_value / MEDIAN_BASKET)), 4)
    line_order = np.repeat(np.arange(n_orders), lines_per_order)
    first_line = np.cumsum(lines_per_order) - lines_per_order
    line_number = np.arange(line_order.size) - first_line[line_order] + 1
    line_customer = owner[line_order]
    item = items.choose_products(
        rng.spawn(1)[0],
        world,
        shoppers,
        line_customer,
        cal.month_index[np.floor(orders.t[line_order]).astype(np.int64)],
        _choose_rows(rng, c.taste[line_customer]),
    )
    category, product = np.divmod(item, PRODUCTS_PER_CATEGORY)
    quantity = 1 + np.minimum(rng.poisson(np.take(CATEGORY_EXTRA_QUANTITY, category)), 5)
    price = catalogue[category, product]
    list_value = np.bincount(line_order, price * quantity, minlength=n_orders)
    discount = np.round(list_value * discount_rate, 2)

    order_ids = _ids("O", first_id + np.arange(n_orders), 9)
    orders_table = _table(
        "orders",
        {
            "order_id": order_ids,
            "customer_id": pc.take(customer_ids, pa.array(owner)),
            "ordered_at": _timestamps(cal, orders.t).view("datetime64[us]"),
            "revenue": np.round(list_value - discount, 2),
            "discount": discount,
            "status": _labels(ORDER_STATUSES, status),
            "order_channel": _labels(ORDER_CHANNELS, orders.channel),
        },
        RAW_TABLES["orders"],
    )
    items_table = _table(
        "order_items",
        {
            "order_id": pc.take(order_ids, pa.array(line_order)),
            "line_number": line_number,
            "product_id": _ids("P", (category + 1) * 10_000 + product, 6),
            "category": _labels(CATEGORIES, category),
            "quantity": quantity,
            "price": price,
        },
        RAW_TABLES["order_items"],
    )
    return orders_table, items_table


def _session_table(
    rng: np.random.Generator,
    c: _Customers,
    cal: _Calendar,
    orders: _Orders,
    touches: _Touches,
    customer_ids: pa.Array,
    first_id: int,
) -> pa.Table:
    """Organic visits while active, a trickle after dropout, one per click and one
    shortly before every web/app order."""
    lo = np.maximum(c.signup, cal.window_start)
    window_end = np.full(c.size, float(cal.n_days))
    organic = cal.sessions.sample(rng, lo, np.minimum(c.dropout, window_end), c.session_rate)
    dormant = cal.sessions.sample(
        rng, np.maximum(lo, c.dropout), window_end, c.session_rate * DORMANT_SESSION_SHARE
    )
    app_share = c.order_channel_shares[:, 1] / c.order_channel_shares[:, :2].sum(axis=1)

    def organic_sources(rows: np.ndarray) -> np.ndarray:
        app = rng.random(rows.size) < app_share[rows]
        web = rng.choice(len(WEB_SOURCE_SHARES), rows.size, p=WEB_SOURCE_SHARES)
        return np.where(app, SESSION_SOURCES.index("App"), web)

    clicks = np.flatnonzero(touches.clicked)
    end_us = (cal.epoch_day + cal.n_days) * DAY_US - 1
    online = np.flatnonzero(orders.channel != ORDER_CHANNELS.index("store"))
    buyer = orders.customer[online]
    order_source = np.where(
        orders.channel[online] == ORDER_CHANNELS.index("app"),
        SESSION_SOURCES.index("App"),
        organic_sources(buyer),
    )
    order_source = np.where(
        orders.burst_clicked[online],
        np.take(TOUCH_SOURCE, np.maximum(orders.burst_channel[online], 0)),
        order_source,
    )
    before_order = _timestamps(cal, orders.t[online]) - rng.integers(
        2 * MINUTE_US, 45 * MINUTE_US, online.size
    )
    not_before = np.maximum(_timestamps(cal, np.maximum(c.signup[buyer], cal.window_start)),
                            cal.epoch_day * DAY_US)

    customer = np.concatenate([organic[0], dormant[0], touches.customer[clicks], buyer])
    started_us = np.concatenate(
        [
            _timestamps(cal, organic[1]),
            _timestamps(cal, dormant[1]),
            np.minimum(
                _timestamps(cal, touches.t[clicks]) + rng.integers(0, MINUTE_US, clicks.size),
                end_us,
            ),
            np.maximum(before_order, not_before),
        ]
    )
    source = np.concatenate(
        [
            organic_sources(organic[0]),
            organic_sources(dormant[0]),
            np.take(TOUCH_SOURCE, touches.channel[clicks]),
            order_source,
        ]
    )
    kind = np.repeat(np.arange(4), [organic[0].size, dormant[0].size, clicks.size, online.size])
    is_organic, is_dormant, is_click = kind == 0, kind == 1, kind == 2
    cart = c.cart_propensity[customer]
    page_views = np.select(
        [is_organic, is_dormant, is_click],
        [
            1 + rng.poisson(2.5 * np.sqrt(cart)),
            1 + rng.poisson(1.2, kind.size),
            1 + rng.poisson(2.0, kind.size),
        ],
        3 + rng.poisson(4.0, kind.size),
    )
    cart_adds = np.select(
        [is_organic, is_dormant, is_click],
        [rng.poisson(0.35 * cart), rng.poisson(0.05, kind.size), rng.poisson(0.3 * cart)],
        1 + rng.poisson(0.6, kind.size),
    )
    order = np.lexsort((started_us, customer))
    return _table(
        "sessions",
        {
            "session_id": _ids("S", first_id + np.arange(kind.size), 10),
            "customer_id": pc.take(customer_ids, pa.array(customer[order])),
            "started_at": started_us[order].view("datetime64[us]"),
            "traffic_source": _labels(SESSION_SOURCES, source[order]),
            "page_views": page_views[order],
            "cart_adds": cart_adds[order],
        },
        RAW_TABLES["sessions"],
    )


def _touch_table(
    rng: np.random.Generator,
    cal: _Calendar,
    touches: _Touches,
    campaigns: list[str],
    customer_ids: pa.Array,
    first_id: int,
) -> pa.Table:
    n_touches = touches.customer.size
    day = np.floor(touches.t).astype(np.int64)
    n_themes = np.array([len(themes) for themes in CAMPAIGN_THEMES])
    theme = np.floor(rng.random(n_touches) * n_themes[touches.channel]).astype(np.int64)
    theme = np.where(cal.holiday_campaign[day], _MAX_THEMES, theme)
    campaign = (cal.month_index[day] * len(TOUCH_CHANNELS) + touches.channel) * (
        _MAX_THEMES + 1
    ) + theme
    cost_per_click = SEM_COST_PER_CLICK * _lognormal(rng, 0.35, n_touches)
    cost = np.where(
        touches.channel == TOUCH_CHANNELS.index("SEM"),
        np.where(touches.clicked, cost_per_click, 0.0),
        np.take(TOUCH_COST, touches.channel),
    )
    return _table(
        "marketing_touches",
        {
            "touch_id": _ids("T", first_id + np.arange(n_touches), 10),
            "customer_id": pc.take(customer_ids, pa.array(touches.customer)),
            "touched_at": _timestamps(cal, touches.t).view("datetime64[us]"),
            "channel": _labels(TOUCH_CHANNELS, touches.channel),
            "campaign": _labels(campaigns, campaign),
            "cost": np.round(cost, 4),
            "clicked": touches.clicked,
        },
        RAW_TABLES["marketing_touches"],
    )


@dataclass
class _IdCounters:
    """Next sequence number per id, so ids stay unique across chunks."""

    orders: int = 0
    sessions: int = 0
    touches: int = 0


def _simulate_chunk(
    rng: np.random.Generator,
    c: _Customers,
    first_customer: int,
    cal: _Calendar,
    catalogue: np.ndarray,
    world: items.ItemWorld,
    campaigns: list[str],
    ids: _IdCounters,
    contacts: retention.Contacts | None = None,
) -> dict[str, pa.Table]:
    customer_ids = _ids("C", first_customer + np.arange(c.size), 7)
    contacts = contacts if contacts is not None else retention.empty_contacts()
    # Spawned streams leave this chunk's own stream (and so the other tables) as it was.
    shoppers = items.draw_shoppers(
        rng.spawn(1)[0],
        world,
        c.taste,
        c.basket / MEDIAN_BASKET,
        cal.month_index[np.floor(np.maximum(c.signup, 0.0)).astype(np.int64)],
    )
    touches = _simulate_touches(rng, c, cal)
    orders = _simulate_orders(rng, c, cal, touches, _save_orders(c, cal, contacts))
    orders_table, items_table = _order_tables(
        rng, c, cal, orders, catalogue, world, shoppers, customer_ids, ids.orders
    )
    tables = {
        "customers": _table(
            "customers",
            {
                "customer_id": customer_ids,
                "signed_up_at": _timestamps(cal, c.signup).view("datetime64[us]"),
                "region": _labels(REGIONS, c.region),
                "acquisition_channel": _labels(ACQUISITION_CHANNELS, c.acquisition),
            },
            RAW_TABLES["customers"],
        ),
        "orders": orders_table,
        "order_items": items_table,
        "sessions": _session_table(rng, c, cal, orders, touches, customer_ids, ids.sessions),
        "marketing_touches": _touch_table(rng, cal, touches, campaigns, customer_ids, ids.touches),
        "oracle": _oracle_chunk(c, customer_ids, cal, touches),
        "item_oracle": _item_oracle_chunk(c, customer_ids, cal, world, shoppers),
        "campaign_assignments": retention.assignment_table(contacts, customer_ids, cal.start),
        "campaign_effects": retention.effects_table(
            contacts, customer_ids, _campaign_outcomes(c, cal, touches, contacts)),
    }
    ids.orders += tables["orders"].num_rows
    ids.sessions += tables["sessions"].num_rows
    ids.touches += tables["marketing_touches"].num_rows
    return tables


def _campaign_names(cal: _Calendar) -> list[str]:
    """Campaign vocabulary indexed by (month, channel, theme), holiday theme last."""
    first_month = np.datetime64(cal.start, "M")
    names = []
    for month in range(int(cal.month_index[cal.n_days - 1]) + 1):
        label = str(first_month + month)
        for channel, themes in zip(TOUCH_CHANNELS, CAMPAIGN_THEMES, strict=True):
            padded = list(themes) + [themes[-1]] * (_MAX_THEMES - len(themes)) + [HOLIDAY_THEME]
            names += [f"{channel.lower()}-{theme}-{label}" for theme in padded]
    return names


# --- oracle ------------------------------------------------------------------------------


def _oracle_chunk(
    c: _Customers, customer_ids: pa.Array, cal: _Calendar, touches: _Touches
) -> pa.Table:
    """P(no completed order in the horizon | latent state at as_of), in closed form.

    Given the dropout time, completed orders are a Poisson process (base, seasonal peak,
    new-customer boost and bursts, each thinned by the completed share), so with a daily
    intensity l_j and dropout hazard m_j,
    P(none in [0, h)) = sum_j e^-(M_j + L_j) m_j / (m_j + l_j) (1 - e^-(m_j + l_j))
                        + e^-(M_h + L_h),
    where M, L are the hazards and intensities accumulated before day j. Bursts from future
    touches enter by their expectation (exact for a Poisson process of touches); touches
    already made enter with their realised clicks.
    """
    rates_at = _daily_rates(c, cal, touches)
    # Seeded with empty arrays: a window shorter than a month has no snapshot.
    customer, as_of = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    no_order = {h: [np.zeros(0)] for h in ORACLE_HORIZONS}
    for q, day in enumerate(cal.as_of_days):
        signed = np.flatnonzero(c.signup < day)
        is_active = c.dropout[signed] > day
        active = signed[is_active]
        intensity, hazard = rates_at(q, active)
        total = hazard + intensity
        none_today = np.exp(-total)  # neither an order nor dropout during day j
        survive_through = np.cumprod(none_today, axis=1)
        survive_before = np.column_stack([np.ones(active.size), survive_through[:, :-1]])
        drop_first = survive_before * hazard / total * (1 - none_today)

        # No order in [0, h): dropout came first within h days, or neither happened.
        dropped_by = np.cumsum(drop_first, axis=1)
        for h in ORACLE_HORIZONS:
            prob = np.ones(signed.size)  # a customer who already dropped out orders no more
            prob[is_active] = dropped_by[:, h - 1] + survive_through[:, h - 1]
            no_order[h].append(prob)
        customer.append(signed)
        as_of.append(np.full(signed.size, day))

    customer_rows = np.concatenate(customer)
    as_of_dates = np.datetime64(cal.start, "D") + np.concatenate(as_of)
    return _table(
        ORACLE_TABLE,
        {
            "customer_id": pc.take(customer_ids, pa.array(customer_rows)),
            "as_of_date": as_of_dates,
            **{oracle_column(h): np.clip(np.concatenate(parts), 0.0, 1.0)
               for h, parts in no_order.items()},
        },
        ORACLE_COLUMNS,
    )


def _campaign_outcomes(
    c: _Customers, cal: _Calendar, touches: _Touches, contacts: retention.Contacts
) -> dict[str, np.ndarray]:
    """The true potential outcomes of each contact, from the oracle's daily rates on the
    campaign's first day (a month start, so one of the oracle's snapshot days)."""
    rates_at = _daily_rates(c, cal, touches)
    n = contacts.size
    intensity, hazard = np.zeros((n, ORACLE_DAYS)), np.zeros((n, ORACLE_DAYS))
    for day in np.unique(contacts.day):
        q = int(np.searchsorted(cal.as_of_days, day))
        if q >= cal.as_of_days.size or cal.as_of_days[q] != day:
            raise ValueError(f"campaign day {day} is not a month start of the window")
        rows = np.flatnonzero(contacts.day == day)
        intensity[rows], hazard[rows] = rates_at(q, contacts.customer[rows])
    return retention.potential_outcomes(
        intensity, hazard, contacts.horizon, contacts.save_prob, contacts.rescue_prob,
        contacts.backfire_prob, c.completed_share[contacts.customer], contacts.active)


def _daily_rates(c: _Customers, cal: _Calendar, touches: _Touches):
    """``rates_at(q, rows)``: the (row, day) completed-order intensity and dropout hazard
    over the ORACLE_DAYS from the q-th snapshot day, for customers active then."""
    n_as_of = cal.as_of_days.size
    horizon = np.arange(ORACLE_DAYS)
    lags = np.arange(int(BURST_DELAY_DAYS) + 1)
    completed = c.completed_share
    expected_conversion = c.click_prob * c.click_conversion + (1 - c.click_prob) * c.view_conversion
    future_rate = c.touch_rate * expected_conversion * completed[:, None]

    # Bursts still due from touches made in the week before each as_of.
    next_as_of = np.searchsorted(cal.as_of_days, touches.t, side="right")
    recent = next_as_of < n_as_of
    recent[recent] = cal.as_of_days[next_as_of[recent]] - touches.t[recent] < BURST_DELAY_DAYS
    rows = np.flatnonzero(recent)
    conversion = np.where(
        touches.clicked[rows],
        c.click_conversion[touches.customer[rows], touches.channel[rows]],
        c.view_conversion[touches.customer[rows], touches.channel[rows]],
    )
    since = cal.as_of_days[next_as_of[rows]] - touches.t[rows]
    landing = _burst_delay_cdf(since[:, None] + lags + 1) - _burst_delay_cdf(since[:, None] + lags)
    pending = np.zeros((c.size * n_as_of, lags.size))
    np.add.at(
        pending, touches.customer[rows] * n_as_of + next_as_of[rows], conversion[:, None] * landing
    )
    pending = pending.reshape(c.size, n_as_of, lags.size)

    # Intensity and hazard on each horizon day are linear in a few per-customer
    # coefficients times calendar profiles: one matrix product each.
    boost_decay = np.exp(-horizon / NEW_CUSTOMER_BOOST_DAYS) * (
        NEW_CUSTOMER_BOOST * NEW_CUSTOMER_BOOST_DAYS * -np.expm1(-1 / NEW_CUSTOMER_BOOST_DAYS)
    )
    early_decay = np.exp(-horizon / EARLY_HAZARD_DAYS) * (
        EARLY_HAZARD_DAYS * -np.expm1(-1 / EARLY_HAZARD_DAYS)
    )

    def rates_at(q: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        day = cal.as_of_days[q]
        window = day + horizon
        age = day - c.signup[active]
        rate = c.purchase_rate[active] * completed[active]
        intensity = np.column_stack(
            [
                rate,
                rate * c.seasonal_amplitude[active],
                rate * np.exp(-age / NEW_CUSTOMER_BOOST_DAYS),
                future_rate[active],
            ]
        ) @ np.vstack(
            [
                cal.orders_base.weights[window],
                cal.orders_peak.weights[window],
                boost_decay,
                cal.future_bursts[q],
            ]
        )
        intensity[:, : lags.size] += pending[active, q] * completed[active, None]
        hazard = np.column_stack(
            [c.dropout_hazard[active], c.early_hazard[active] * np.exp(-age / EARLY_HAZARD_DAYS)]
        ) @ np.vstack([np.ones(horizon.size), early_decay])
        return intensity, hazard

    return rates_at


def _item_oracle_chunk(
    c: _Customers,
    customer_ids: pa.Array,
    cal: _Calendar,
    world: items.ItemWorld,
    shoppers: items.Shoppers,
) -> pa.Table:
    matured = cal.as_of_days[cal.as_of_days + ITEM_ORACLE_HORIZON_DAYS <= cal.n_days]
    snapshots = matured[-ITEM_ORACLE_SNAPSHOTS:]
    customer, day, item, p_buy = items.oracle(
        world,
        shoppers,
        c.taste,
        items.expected_lines_per_day(c.purchase_rate, c.completed_share),
        c.signup,
        c.dropout,
        snapshots,
        cal.month_index[snapshots],
    )
    category, product = np.divmod(item, PRODUCTS_PER_CATEGORY)
    return _table(
        ITEM_ORACLE_TABLE,
        {
            "customer_id": pc.take(customer_ids, pa.array(customer)),
            "as_of_date": np.datetime64(cal.start, "D") + day,
            "product_id": _ids("P", (category + 1) * 10_000 + product, 6),
            "p_buy": p_buy,
        },
        ITEM_ORACLE_COLUMNS,
    )


# --- media ---------------------------------------------------------------------------------


def _with_media(cal: _Calendar, seed: int, customers: int) -> tuple[_Calendar, media.MediaWorld]:
    """The calendar whose in-window signup profile is ml.sim.media's expected new customers
    per day (the old profile as its baseline, plus sale days and paid media), and that
    media world. Only signup days move: the number of draws, and so every other random
    stream, is unchanged."""
    n_days = cal.n_days
    weights = cal.signups.weights.copy()
    world = media.simulate_media(seed, cal.start, cal.start + timedelta(days=n_days - 1),
                                 weights[:n_days], customers * (1 - PRE_START_SHARE))
    rate = world.expected_new_customers
    weights[n_days:] *= rate[-1] / weights[n_days - 1]  # the tail (never drawn) continues
    weights[:n_days] = rate
    return replace(cal, signups=_Profile.of(weights)), world


# --- entry points ------------------------------------------------------------------------


def _touch_response(c: _Customers) -> np.ndarray:
    """Each customer's latent responsiveness per touch channel (what drives their clicks)."""
    return -np.log1p(-c.click_prob) / np.asarray(CLICK_RATE)


def _with_past_campaigns(
    population: _Customers, cal: _Calendar, seed: int
) -> tuple[_Customers, retention.Contacts]:
    """The past retention tests (ml.sim.campaigns) and the population after their contacts
    (only dropout times move; every other trait and random stream is unchanged)."""
    crm_opted_in = population.touch_rate[:, TOUCH_CHANNELS.index("CRM")] > 0
    response = retention.channel_response(_touch_response(population), TOUCH_CHANNELS,
                                          crm_opted_in)
    contacts, dropout = retention.draw_past_campaigns(
        seed, cal.start, cal.n_days, population.signup, population.dropout, response,
        population.basket / MEDIAN_BASKET)
    traits = {f.name: getattr(population, f.name) for f in fields(population)}
    return _Customers(**{**traits, "dropout": dropout}), contacts


def _chunks(total: int) -> Iterator[slice]:
    for first in range(0, total, CHUNK_CUSTOMERS):
        yield slice(first, min(first + CHUNK_CUSTOMERS, total))


def _world(customers: int, seed: int, start: date, end: date):
    """Everything drawn before the customers' lives are simulated, in the stream's order:
    (calendar, media world, population after the past campaigns, their contacts, catalogue,
    chunks, chunk streams, item world). ml.sim.advance rebuilds it to continue the history."""
    cal = _calendar(start, end)
    cal, media_world = _with_media(cal, seed, customers)
    rng = np.random.Generator(np.random.PCG64(seed))
    population = _draw_customers(rng, customers, cal)
    population, contacts = _with_past_campaigns(population, cal, seed)
    catalogue = _catalogue(rng)
    chunks = list(_chunks(customers))
    chunk_rngs = rng.spawn(len(chunks))
    world = items.draw_world(rng.spawn(1)[0], catalogue, int(cal.month_index[cal.n_days]) + 1)
    return cal, media_world, population, contacts, catalogue, chunks, chunk_rngs, world


def generate_tables(
    customers: int, seed: int, start: date, end: date, progress: bool = False
) -> dict[str, pa.Table]:
    """The synthetic history as arrow tables keyed "schema.table": the five raw tables and
    eval.oracle_labels and eval.item_oracle. Same arguments, same tables."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    cal, media_world, population, contacts, catalogue, chunks, chunk_rngs, world = _world(
        customers, seed, start, end)
    campaigns = _campaign_names(cal)
    ids = _IdCounters()
    parts: dict[str, list[pa.Table]] = {}
    with _progress_bar(progress) as bar:
        task = bar.add_task("simulating customers", total=customers)
        for rows, chunk_rng in zip(chunks, chunk_rngs, strict=True):
            tables = _simulate_chunk(
                chunk_rng, population.take(rows), rows.start, cal, catalogue, world, campaigns,
                ids, contacts.for_rows(rows.start, rows.stop),
            )
            for name, table in tables.items():
                parts.setdefault(name, []).append(table)
            bar.advance(task, rows.stop - rows.start)
    result = {f"{RAW_SCHEMA}.{name}": pa.concat_tables(parts[name])
              for name in RAW_TABLES if name not in ("media_spend", "media_lift_tests")}
    result[f"{RAW_SCHEMA}.media_spend"] = media_world.spend_table()
    result[f"{RAW_SCHEMA}.media_lift_tests"] = media_world.lift_test_table(seed)
    result[f"{EVAL_SCHEMA}.{MEDIA_TRUTH_TABLE}"] = media_world.truth_table()
    result[f"{EVAL_SCHEMA}.{ORACLE_TABLE}"] = pa.concat_tables(parts["oracle"])
    result[f"{EVAL_SCHEMA}.{ITEM_ORACLE_TABLE}"] = pa.concat_tables(parts["item_oracle"])
    result[f"{EVAL_SCHEMA}.{CAMPAIGN_EFFECTS_TABLE}"] = pa.concat_tables(parts["campaign_effects"])
    return result


def generate(
    customers: int,
    seed: int,
    start: date,
    end: date,
    warehouse_path: Path | None = None,
    progress: bool = False,
) -> GenerationSummary:
    """Generate the history and replace the raw tables and eval.oracle_labels in the
    warehouse (the configured one, or the DuckDB file at ``warehouse_path``), all at once."""
    started = time.perf_counter()
    tables = generate_tables(customers, seed, start, end, progress=progress)
    tables[f"{EVAL_SCHEMA}.{retention.SIM_RUNS_TABLE}"] = retention.sim_run_table(
        customers, seed, start, end)
    with _progress_bar(progress) as bar:
        task = bar.add_task("writing to the warehouse", total=1)
        warehouse = DuckDBWarehouse(warehouse_path) if warehouse_path else get_warehouse()
        warehouse.replace_tables(tables)
        bar.advance(task)
    return GenerationSummary(
        customers=customers,
        seed=seed,
        start=start,
        end=end,
        row_counts={name: table.num_rows for name, table in tables.items()},
        seconds=time.perf_counter() - started,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _progress_bar(enabled: bool):
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<26}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
