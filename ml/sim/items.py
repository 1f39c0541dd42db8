"""Which products a customer buys: a learnable item world for the synthetic history.

``history.py`` decides when a customer orders, how many lines an order has and which
category each line is drawn from (the customer's category taste, as before); this module
decides the product of every line and knows the true probabilities behind that choice.

* **Catalogue over time.** ``PRODUCTS_PER_CATEGORY`` products per category, priced by
  ``history._catalogue``. Most products are on sale before the window starts; the rest
  launch at a month start inside it. Every product retires after an exponential
  lifetime, so products disappear and new ones appear, month by month.
* **Popularity drift.** A product's log-popularity is a heavy-tailed base level plus a
  per-product linear trend over the years plus a launch boost that fades over a few
  months: last year's bestseller need not be this month's.
* **Taste.** Customers and products carry ``TASTE_FACTORS`` latent factors; within the
  category of a line the product is drawn from a softmax of popularity + taste affinity
  - a penalty on the distance from the customer's usual price level (kept from the old
  price-matched choice, so basket values still follow the customer's basket).
* **Staples and repeats.** Each customer has ``STAPLES`` favourite products drawn from
  their own taste when the window (or their life) starts; a customer-specific share of
  lines (Beta across customers) rebuys one of the staples still on sale.
* **Exploration.** ``EXPLORATION`` of lines ignore taste and category: a draw from this
  month's popularity over the whole catalogue.

The choice probabilities are closed-form given the latent state, so
``eval.item_oracle`` holds, for the last ``ITEM_ORACLE_SNAPSHOTS`` month starts, each
active customer's ``ITEM_ORACLE_TOP`` most likely products with
``p_buy = 1 - exp(-expected lines in the next ITEM_ORACLE_HORIZON_DAYS days x P(line is
the product))``. The ranking within a customer is exact for the month of the snapshot;
the level uses the base purchase rate (no bursts or season), which ranking metrics do not
see. Evaluation only, never a feature.

Everything is vectorised; all draws come from the generator handed in, so the same seed
gives the same products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.schema import ITEM_ORACLE_HORIZON_DAYS, ITEM_ORACLE_TOP

PRODUCTS_PER_CATEGORY = 400
TASTE_FACTORS = 8
TASTE_WEIGHT = 1.6  # scale of the taste affinity against log-popularity (std 1)
PRICE_PENALTY = 1.2  # per squared log-price distance from the customer's level
PRICE_LEVEL_ON_BASKET = 0.6  # log price level = this x log(basket / median basket)
PRE_WINDOW_SHARE = 0.7  # products already on sale when the window starts
MEAN_LIFETIME_MONTHS = 40.0
LAUNCH_BOOST = 1.5  # extra log-popularity at launch, fading with LAUNCH_BOOST_MONTHS
LAUNCH_BOOST_MONTHS = 3.0
POPULARITY_TREND_SD = 0.6  # per-product log-popularity trend per year
STAPLES = 4
STAPLE_SHARE = (2.0, 4.0)  # Beta(a, b) across customers: share of lines that rebuy a staple
EXPLORATION = 0.08
MEAN_LINES_PER_ORDER = 1.7  # the order-line mix of history.py, for the oracle's level
CHOICE_BATCH = 8192  # lines (or customers) per dense block: bounds memory


@dataclass(frozen=True)
class ItemWorld:
    """Products indexed ``category * PRODUCTS_PER_CATEGORY + product`` and their months."""

    factors: np.ndarray  # (items, TASTE_FACTORS)
    log_price: np.ndarray  # (items,)
    log_popularity: np.ndarray  # (months, items), -inf while not on sale
    popularity_cdf: np.ndarray  # (months, items): this month's popularity, cumulated

    @property
    def n_items(self) -> int:
        return self.log_price.size

    @property
    def on_sale(self) -> np.ndarray:
        return np.isfinite(self.log_popularity)


@dataclass(frozen=True)
class Shoppers:
    """Per-customer item traits of one chunk."""

    taste: np.ndarray  # (customers, TASTE_FACTORS)
    price_level: np.ndarray  # (customers,) log offset from each category's median price
    staple_share: np.ndarray  # (customers,)
    staples: np.ndarray  # (customers, STAPLES) item indices


def draw_world(rng: np.random.Generator, prices: np.ndarray, n_months: int) -> ItemWorld:
    """The catalogue's factors, launches, retirements and popularity per month."""
    n_categories = prices.shape[0]
    n_items = n_categories * PRODUCTS_PER_CATEGORY
    pre_window = rng.random(n_items) < PRE_WINDOW_SHARE
    launch = np.where(
        pre_window,
        -rng.exponential(MEAN_LIFETIME_MONTHS / 2, n_items),
        rng.integers(1, max(n_months, 2), n_items),
    ).astype(np.float64)
    retire = launch + rng.exponential(MEAN_LIFETIME_MONTHS, n_items)
    month = np.arange(n_months, dtype=np.float64)[:, None]
    age = month - launch
    log_popularity = (
        rng.standard_normal(n_items)
        + POPULARITY_TREND_SD * rng.standard_normal(n_items) * month / 12
        + LAUNCH_BOOST * np.exp(-np.maximum(age, 0) / LAUNCH_BOOST_MONTHS)
    )
    log_popularity = np.where((age >= 0) & (month < retire), log_popularity, -np.inf)
    # Nothing on sale in some category would leave its lines without a product.
    empty = ~np.isfinite(log_popularity.reshape(n_months, n_categories, -1)).any(axis=2)
    for m, category in zip(*np.nonzero(empty), strict=True):
        log_popularity[m, category * PRODUCTS_PER_CATEGORY] = 0.0
    weights = np.exp(log_popularity - log_popularity.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    return ItemWorld(
        factors=rng.standard_normal((n_items, TASTE_FACTORS)) / np.sqrt(TASTE_FACTORS),
        log_price=np.log(prices).ravel(),
        log_popularity=log_popularity.astype(np.float32),
        popularity_cdf=cdf / cdf[:, -1:],
    )


def draw_shoppers(
    rng: np.random.Generator,
    world: ItemWorld,
    category_taste: np.ndarray,
    basket_ratio: np.ndarray,
    first_month: np.ndarray,
) -> Shoppers:
    """Taste factors, price level and staple set for each customer of a chunk; staples are
    drawn from the customer's own choice distribution in ``first_month``."""
    n = category_taste.shape[0]
    partial = Shoppers(
        taste=rng.standard_normal((n, TASTE_FACTORS)).astype(np.float32),
        price_level=(PRICE_LEVEL_ON_BASKET * np.log(basket_ratio)).astype(np.float32),
        staple_share=rng.beta(*STAPLE_SHARE, n),
        staples=np.zeros((n, STAPLES), np.int64),
    )
    # STAPLES taste draws each (a product drawn twice is simply a stronger staple).
    customer = np.repeat(np.arange(n), STAPLES)
    shares = np.cumsum(category_taste[customer], axis=1)
    category = (rng.random(customer.size)[:, None] * shares[:, -1:] > shares).sum(axis=1)
    staples = _taste_draws(rng, world, partial, customer, first_month[customer], category)
    return Shoppers(partial.taste, partial.price_level, partial.staple_share,
                    staples.reshape(n, STAPLES))


def choose_products(
    rng: np.random.Generator,
    world: ItemWorld,
    shoppers: Shoppers,
    customer: np.ndarray,
    month: np.ndarray,
    category: np.ndarray,
) -> np.ndarray:
    """The item index of each order line (its customer, month and taste-drawn category):
    a staple still on sale, an exploration draw, or a taste draw within the category."""
    n_lines = customer.size
    u = rng.random(n_lines)
    staple_on_sale = world.on_sale[month[:, None], shoppers.staples[customer]]
    has_staple = staple_on_sale.any(axis=1)
    is_staple = has_staple & (u < shoppers.staple_share[customer])
    is_explore = ~is_staple & (rng.random(n_lines) < EXPLORATION)
    item = np.empty(n_lines, np.int64)

    pick = np.argmax(np.where(staple_on_sale, rng.random(staple_on_sale.shape), -1.0), axis=1)
    item[is_staple] = shoppers.staples[customer, pick][is_staple]

    explore = np.flatnonzero(is_explore)
    flat_cdf = (world.popularity_cdf + np.arange(world.popularity_cdf.shape[0])[:, None]).ravel()
    drawn = np.searchsorted(flat_cdf, month[explore] + rng.random(explore.size), side="right")
    item[explore] = np.minimum(drawn - month[explore] * world.n_items, world.n_items - 1)

    taste = np.flatnonzero(~is_staple & ~is_explore)
    item[taste] = _taste_draws(rng, world, shoppers, customer[taste], month[taste], category[taste])
    return item


def _taste_draws(
    rng: np.random.Generator,
    world: ItemWorld,
    shoppers: Shoppers,
    customer: np.ndarray,
    month: np.ndarray,
    category: np.ndarray,
) -> np.ndarray:
    """One product per (customer, month, category), from the within-category taste choice."""
    item = np.empty(customer.size, np.int64)
    draws = rng.random(customer.size)
    for c in range(world.n_items // PRODUCTS_PER_CATEGORY):
        in_category = np.flatnonzero(category == c)
        for block in _blocks(in_category.size):
            rows = in_category[block]
            weights = _within_category(world, shoppers, customer[rows], month[rows], c)
            cumulative = np.cumsum(weights, axis=1)
            target = draws[rows, None] * cumulative[:, -1:]
            offset = np.minimum((cumulative < target).sum(axis=1), PRODUCTS_PER_CATEGORY - 1)
            item[rows] = c * PRODUCTS_PER_CATEGORY + offset
    return item


def oracle(
    world: ItemWorld,
    shoppers: Shoppers,
    category_taste: np.ndarray,
    lines_per_day: np.ndarray,
    signup: np.ndarray,
    dropout: np.ndarray,
    as_of_days: np.ndarray,
    as_of_months: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer row, as_of day, item, p_buy) of each active customer's top items at each
    of ``as_of_days`` (see the module docstring)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for day, month in zip(as_of_days, as_of_months, strict=True):
        active = np.flatnonzero((signup < day) & (dropout > day))
        for block in _blocks(active.size):
            rows = active[block]
            line_prob = _line_probabilities(world, shoppers, category_taste, rows, month)
            top = min(ITEM_ORACLE_TOP, world.n_items)
            best = np.argpartition(-line_prob, top - 1, axis=1)[:, :top]
            prob = np.take_along_axis(line_prob, best, axis=1)
            expected_lines = lines_per_day[rows, None] * ITEM_ORACLE_HORIZON_DAYS
            parts.append((
                np.repeat(rows, top),
                np.full(rows.size * top, day),
                best.ravel(),
                (-np.expm1(-expected_lines * prob)).ravel(),
            ))
    if not parts:
        return tuple(np.zeros(0, dtype) for dtype in (np.int64, np.int64, np.int64, np.float64))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def expected_lines_per_day(purchase_rate: np.ndarray, completed_share: np.ndarray) -> np.ndarray:
    """Completed order lines per day at the base purchase rate: the oracle's level."""
    return purchase_rate * completed_share * MEAN_LINES_PER_ORDER


def _blocks(n: int):
    for first in range(0, n, CHOICE_BATCH):
        yield slice(first, min(first + CHOICE_BATCH, n))


def _within_category(
    world: ItemWorld, shoppers: Shoppers, customer: np.ndarray, month: np.ndarray | int, c: int
) -> np.ndarray:
    """Unnormalised P(product | a taste line in category c), (lines, products of c).

    The utility popularity + taste . factors - PRICE_PENALTY (centred log price - level)^2
    is expanded so that everything per line is one small matrix product (the level^2 term
    is constant within a row and drops out of the softmax)."""
    items = slice(c * PRODUCTS_PER_CATEGORY, (c + 1) * PRODUCTS_PER_CATEGORY)
    centred = world.log_price[items] - np.median(world.log_price[items])
    line_side = np.column_stack([TASTE_WEIGHT * shoppers.taste[customer],
                                 2 * PRICE_PENALTY * shoppers.price_level[customer]])
    item_side = np.column_stack([world.factors[items], centred]).astype(np.float32)
    utility = line_side @ item_side.T
    utility += world.log_popularity[month, items] - PRICE_PENALTY * centred**2
    utility -= utility.max(axis=1, keepdims=True)
    return np.exp(utility, out=utility)


def _line_probabilities(
    world: ItemWorld, shoppers: Shoppers, category_taste: np.ndarray, rows: np.ndarray, month: int
) -> np.ndarray:
    """P(a line is the item), (customers, items) in ``month``: the mixture
    ``choose_products`` draws (staples, exploration, category taste x within-category)."""
    staples = shoppers.staples[rows]
    staple_on_sale = world.on_sale[month, staples]
    n_on_sale = staple_on_sale.sum(axis=1)
    staple_share = np.where(n_on_sale > 0, shoppers.staple_share[rows], 0.0)
    taste_share = (1 - staple_share) * (1 - EXPLORATION)
    prob = np.empty((rows.size, world.n_items), np.float32)
    for c in range(world.n_items // PRODUCTS_PER_CATEGORY):
        weights = _within_category(world, shoppers, rows, month, c)
        scale = taste_share * category_taste[rows, c] / weights.sum(axis=1)
        columns = slice(c * PRODUCTS_PER_CATEGORY, (c + 1) * PRODUCTS_PER_CATEGORY)
        prob[:, columns] = weights * scale[:, None]
    popularity = np.diff(world.popularity_cdf[month], prepend=0.0).astype(np.float32)
    prob += ((1 - staple_share) * EXPLORATION)[:, None] * popularity
    per_staple = np.where(staple_on_sale, (staple_share / np.maximum(n_on_sale, 1))[:, None], 0.0)
    np.add.at(prob, (np.arange(rows.size)[:, None], staples), per_staple)
    return prob
