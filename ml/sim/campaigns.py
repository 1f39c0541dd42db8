"""Retention campaigns in the synthetic world: who is contacted, how contact changes a
customer's life, and the true effect of each contact (evaluation only).

**Past campaigns.** The history holds randomised retention tests: on the first day of a
month, six months into the window and every three months after, while the horizon still
ends inside the window, the retailer drew ``PAST_SAMPLE_SHARE`` of its customers of the
last year (signed up at least ``ELIGIBLE_TENURE_DAYS`` before, never in an earlier test so
horizons never overlap) and split them at random (not stratified: those tests had no
score) into treated and control (``PAST_CONTROL_SHARE``). "Of the last year" is the
simulator's stand-in for "ordered in the last 12 months", which the retailer reads from its
orders: customers whose relationship was still alive a year before the campaign. The
sample therefore holds customers who have silently left since as well as loyal ones, as
a retailer who does not see dropout would draw it. The channel rotates over the retention
channels of ``dbt_project/seeds/retention_channels.csv``. Control customers are not
contacted.

**What contact does** (to a customer still active when contacted at day ``d``; a customer
who has silently dropped out ignores it):

* *Backfire* ("sleeping dogs"): a few customers are contact-averse (``AVERSE_SHARE``,
  twice as likely among those who respond little to marketing). For them a contact on
  channel k ends the relationship at once with probability ``BACKFIRE[k]`` (intrusive
  channels more): they drop out at ``d``.
* *Rescue*: otherwise, with probability ``r = 1 - exp(-RESCUE_RATE[k] * response_k *
  loyalty)`` a dropout that would have come within the horizon is postponed by the
  horizon (the hazard is suspended for it). ``loyalty = min(1, tenure / 1 year) ** 0.5``:
  a relationship of some standing is easier to save than a newcomer's.
* *Save order*: independently, with probability ``a = 1 - exp(-SAVE_RATE[k] *
  response_k * (median basket / basket) ** 0.3)`` the offer triggers one order within
  ``SAVE_ORDER_DAYS`` (uniform), placed if the customer is still active then; small
  baskets react more to an offer. Its status follows the customer's return/cancel shares.

``response_k`` is the customer's latent responsiveness on the channel, the same trait
that drives their clicks on marketing touches in ``ml.sim.history`` (so history shows a
noisy trace of it): CRM's for ``crm_email`` (zero unless opted in: the e-mail never
arrives), SEM's for ``sem``, Display's for ``display`` and the geometric mean over all
touch channels for ``direct_mail``.

So the effect is heterogeneous in ways churn probability alone does not capture:
*lost causes* (already gone: no effect, though their churn probability is highest),
*sure things* (frequent buyers who order in the horizon anyway: little effect on
retention), *persuadables* (active, at risk of dropping out or ordering rarely, and
responsive to the channel) and *sleeping dogs* (negative effect). Nothing here was tuned
to make any targeting method look good; the constants are plausible guesses.

**Truth.** ``potential_outcomes`` gives for every assigned customer, treated or not,
P(retained | treated) and P(retained | control), retained = at least one completed order in
``[d, d + horizon)``, in closed form from the same daily intensities and hazards as
``eval.oracle_labels`` (day resolution, like the oracle), plus the expected completed
orders in the horizon under each arm. They go to ``eval.campaign_effects``; no model
reads them. ``eval.oracle_labels`` at a campaign's date describe the world before the
contact's rescue (a backfired customer shows as gone).

Randomness comes from its own stream ``(seed, CAMPAIGN_STREAM)``, so campaigns do not
shift the draws of the customers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from ml.schema import CAMPAIGN_EFFECTS_COLUMNS, RAW_TABLES, arrow_schema

RETENTION_CHANNELS = ("crm_email", "sem", "display", "direct_mail")
CAMPAIGN_STREAM = 0xC0FFEE  # the second word of the campaigns' seed

# --- past campaigns ----------------------------------------------------------------------
PAST_FIRST_MONTH = 6  # months after the window's first month
PAST_EVERY_MONTHS = 3
PAST_HORIZON_DAYS = 90  # = the churn horizon: retained = not churned
PAST_SAMPLE_SHARE = 0.3  # of the eligible customers
PAST_LOOKBACK_DAYS = 365
PAST_CONTROL_SHARE = 0.5
ELIGIBLE_TENURE_DAYS = 30
MAX_HORIZON_DAYS = 90  # the intensities cover 90 days (ml.sim.history's oracle)

# --- the effect of contact ---------------------------------------------------------------
SAVE_RATE = (0.10, 0.07, 0.04, 0.16)  # per unit of response, by retention channel
RESCUE_RATE = (0.30, 0.15, 0.10, 0.45)
BACKFIRE = (0.5, 0.1, 0.25, 0.35)  # P(contact ends it | contact-averse)
AVERSE_SHARE = 0.05  # doubled among the less responsive half
SAVE_ORDER_DAYS = 7.0


@dataclass(frozen=True)
class Contacts:
    """Campaign assignments, one row per (campaign, customer), with what contact would do."""

    campaign: np.ndarray  # index into names
    customer: np.ndarray  # population row
    day: np.ndarray  # days since the window's start (the campaign's first day)
    channel: np.ndarray  # index into RETENTION_CHANNELS
    treated: np.ndarray
    score_decile: np.ndarray  # -1 = none
    horizon: np.ndarray
    planned_share: np.ndarray  # the design's control share (NaN: unknown)
    active: np.ndarray  # active when contacted (before the contact's own effect)
    save_prob: np.ndarray  # a
    rescue_prob: np.ndarray  # r
    backfire_prob: np.ndarray  # b (0 unless contact-averse)
    save_at: np.ndarray  # day of the triggered save order (treated only), NaN if none
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.customer.size

    def for_rows(self, first: int, stop: int) -> Contacts:
        """The contacts of population rows [first, stop), re-indexed from 0."""
        keep = (self.customer >= first) & (self.customer < stop)
        arrays = {f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name != "names"}
        arrays["customer"] = arrays["customer"] - first
        return Contacts(**arrays, names=self.names)


def empty_contacts() -> Contacts:
    ints, floats = np.zeros(0, np.int64), np.zeros(0)
    return Contacts(ints, ints, ints, ints, np.zeros(0, bool), ints, ints, floats,
                    np.zeros(0, bool), floats, floats, floats, floats, ())


def campaign_name(day: date, channel: str) -> str:
    return f"retention-{day:%Y-%m}-{channel}"


def past_schedule(start: date, n_days: int,
                  horizon: int = PAST_HORIZON_DAYS) -> list[tuple[str, int, int]]:
    """(name, day since start, channel index) of the past campaigns of a window."""
    schedule = []
    month, k = PAST_FIRST_MONTH, 0
    while True:
        first = _add_months(date(start.year, start.month, 1), month)
        day = (first - start).days
        if day + horizon > n_days:
            return schedule
        channel = k % len(RETENTION_CHANNELS)
        schedule.append((campaign_name(first, RETENTION_CHANNELS[channel]), day, channel))
        month, k = month + PAST_EVERY_MONTHS, k + 1


def _add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def channel_response(touch_response: np.ndarray, touch_channels: tuple[str, ...],
                     crm_opted_in: np.ndarray) -> np.ndarray:
    """(customer, retention channel) responsiveness from the touch channels' latent trait."""
    crm, sem, display = (touch_channels.index(n) for n in ("CRM", "SEM", "Display"))
    return np.column_stack([
        touch_response[:, crm] * crm_opted_in,
        touch_response[:, sem],
        touch_response[:, display],
        np.exp(np.log(touch_response).mean(axis=1)),
    ])


def contact_averse(rng: np.random.Generator, response: np.ndarray) -> np.ndarray:
    """The sleeping dogs: a few customers, more among the less responsive half."""
    overall = np.exp(np.log(np.maximum(response[:, 1:], 1e-9)).mean(axis=1))
    share = AVERSE_SHARE * np.where(overall < np.median(overall), 2.0, 1.0) / 1.5
    return rng.random(response.shape[0]) < share


def effect_probabilities(response: np.ndarray, basket_ratio: np.ndarray, tenure_days: np.ndarray,
                         averse: np.ndarray, channel: np.ndarray, rows: np.ndarray):
    """(save, rescue, backfire) probabilities of contacting ``rows`` on ``channel``."""
    r = response[rows, channel]
    save = -np.expm1(-np.take(SAVE_RATE, channel) * r * basket_ratio[rows] ** -0.3)
    loyalty = np.sqrt(np.clip(tenure_days / 365.0, 0.0, 1.0))
    rescue = -np.expm1(-np.take(RESCUE_RATE, channel) * r * loyalty)
    backfire = np.where(averse[rows], np.take(BACKFIRE, channel), 0.0)
    return save, rescue, backfire


def apply_contacts(rng: np.random.Generator, dropout: np.ndarray, contacts_day: np.ndarray,
                   customer: np.ndarray, treated: np.ndarray, horizon: np.ndarray,
                   save: np.ndarray, rescue: np.ndarray, backfire: np.ndarray):
    """Play treated contacts on the dropout times (one contact per customer in a call).

    Returns (new dropout times, active at contact, save-order day or NaN)."""
    dropout = dropout.copy()
    n = customer.size
    active = dropout[customer] > contacts_day
    u_backfire, u_rescue, u_save, u_delay = rng.random((4, n))
    hit = treated & active
    backfired = hit & (u_backfire < backfire)
    rescued = hit & ~backfired & (u_rescue < rescue)
    current = dropout[customer]
    in_horizon = (current >= contacts_day) & (current < contacts_day + horizon)
    new = np.where(backfired, contacts_day.astype(float), current)
    new = np.where(rescued & in_horizon, current + horizon, new)
    dropout[customer] = new
    saves = hit & ~backfired & (u_save < save)
    save_at = np.where(saves, contacts_day + u_delay * SAVE_ORDER_DAYS, np.nan)
    return dropout, active, save_at


def draw_past_campaigns(seed: int, start: date, n_days: int, signup: np.ndarray,
                        dropout: np.ndarray, response: np.ndarray,
                        basket_ratio: np.ndarray) -> tuple[Contacts, np.ndarray]:
    """The past campaigns of a window and the dropout times after their contacts."""
    rng = np.random.Generator(np.random.PCG64([seed, CAMPAIGN_STREAM]))
    averse = contact_averse(rng, response)
    schedule = past_schedule(start, n_days)
    assigned = np.zeros(signup.size, bool)
    parts: list[dict[str, np.ndarray]] = []
    for index, (_, day, channel) in enumerate(schedule):
        eligible = np.flatnonzero((signup <= day - ELIGIBLE_TENURE_DAYS) & ~assigned
                                  & (dropout > day - PAST_LOOKBACK_DAYS))
        rows = eligible[rng.random(eligible.size) < PAST_SAMPLE_SHARE]
        assigned[rows] = True
        treated = rng.random(rows.size) >= PAST_CONTROL_SHARE
        channels = np.full(rows.size, channel)
        save, rescue, backfire = effect_probabilities(
            response, basket_ratio, day - signup[rows], averse, channels, rows)
        days = np.full(rows.size, day)
        horizon = np.full(rows.size, PAST_HORIZON_DAYS)
        dropout, active, save_at = apply_contacts(rng, dropout, days, rows, treated, horizon,
                                                  save, rescue, backfire)
        parts.append({"campaign": np.full(rows.size, index), "customer": rows, "day": days,
                      "channel": channels, "treated": treated,
                      "score_decile": np.full(rows.size, -1), "horizon": horizon,
                      "planned_share": np.full(rows.size, PAST_CONTROL_SHARE),
                      "active": active, "save_prob": save, "rescue_prob": rescue,
                      "backfire_prob": backfire, "save_at": save_at})
    if not parts:
        return empty_contacts(), dropout
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    order = np.lexsort((arrays["campaign"], arrays["customer"]))
    return (Contacts(**{k: v[order] for k, v in arrays.items()},
                     names=tuple(name for name, _, _ in schedule)), dropout)


def potential_outcomes(intensity: np.ndarray, hazard: np.ndarray, horizon: np.ndarray,
                       save: np.ndarray, rescue: np.ndarray, backfire: np.ndarray,
                       completed: np.ndarray, active: np.ndarray) -> dict[str, np.ndarray]:
    """P(retained) and expected completed orders in the horizon, treated and control.

    ``intensity``/``hazard`` are (customer, day) completed-order intensities and dropout
    hazards from the contact day on (the oracle's; rows of inactive customers are
    ignored). Control: no order means dropout came before any order, or neither happened
    (the oracle's decomposition). Treated: backfire (b) means no order; else a rescue (r)
    removes dropout from the horizon; else the save order (completed with the customer's
    completed share) lands before a dropout on day j with probability
    min(j / SAVE_ORDER_DAYS, 1)."""
    n, days = intensity.shape
    in_horizon = np.arange(days)[None, :] < horizon[:, None]
    lam = np.where(in_horizon, intensity, 0.0)
    mu = np.where(in_horizon, hazard, 0.0)
    total = lam + mu
    none_today = np.exp(-total)
    survive_through = np.cumprod(none_today, axis=1)
    survive_before = np.column_stack([np.ones(n), survive_through[:, :-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        drop_first = np.where(total > 0, survive_before * mu / total * (1 - none_today), 0.0)
    survive_all = survive_through[:, -1]
    landed_by = np.minimum(np.arange(days) / SAVE_ORDER_DAYS, 1.0)[None, :]
    a = save * completed
    no_control = drop_first.sum(axis=1) + survive_all
    no_plain = (drop_first * (1 - a[:, None] * landed_by)).sum(axis=1) + survive_all * (1 - a)
    no_rescued = np.exp(-lam.sum(axis=1)) * (1 - a)
    no_treated = backfire + (1 - backfire) * (rescue * no_rescued + (1 - rescue) * no_plain)

    alive_start = np.exp(-np.column_stack([np.zeros(n), np.cumsum(mu, axis=1)[:, :-1]]))
    orders_control = (alive_start * lam).sum(axis=1)
    save_lands = alive_start[:, 1:int(SAVE_ORDER_DAYS) + 1].mean(axis=1)
    orders_plain = orders_control + a * save_lands
    orders_rescued = lam.sum(axis=1) + a
    orders_treated = (1 - backfire) * (rescue * orders_rescued + (1 - rescue) * orders_plain)

    def gone(values: np.ndarray) -> np.ndarray:
        return np.where(active, values, 0.0)

    p_treated = gone(np.clip(1 - no_treated, 0.0, 1.0))
    p_control = gone(np.clip(1 - no_control, 0.0, 1.0))
    return {"p_retained_treated": p_treated, "p_retained_control": p_control,
            "effect": p_treated - p_control,
            "expected_orders_treated": gone(orders_treated),
            "expected_orders_control": gone(orders_control)}


def assignment_table(contacts: Contacts, customer_ids: pa.Array, start: date) -> pa.Table:
    """raw.campaign_assignments rows of these contacts (contract: ml.schema.RAW_TABLES)."""
    assigned_at = np.datetime64(start, "us") + contacts.day.astype("timedelta64[D]")
    columns = {
        "campaign": pa.array([contacts.names[i] for i in contacts.campaign], pa.string()),
        "customer_id": customer_ids.take(pa.array(contacts.customer, pa.int64())),
        "assigned_at": pa.array(assigned_at.astype("datetime64[us]")),
        "channel": pa.array([RETENTION_CHANNELS[i] for i in contacts.channel], pa.string()),
        "treated": pa.array(contacts.treated),
        "score_decile": pa.array(np.where(contacts.score_decile >= 0, contacts.score_decile, 0),
                                 mask=contacts.score_decile < 0, type=pa.int32()),
        "horizon_days": pa.array(contacts.horizon, pa.int32()),
        "planned_control_share": pa.array(contacts.planned_share, pa.float64(),
                                          from_pandas=True),
    }
    return pa.Table.from_pydict(columns, schema=arrow_schema(RAW_TABLES["campaign_assignments"]))


def effects_table(contacts: Contacts, customer_ids: pa.Array,
                  outcomes: dict[str, np.ndarray]) -> pa.Table:
    """eval.campaign_effects rows (contract: ml.schema.CAMPAIGN_EFFECTS_COLUMNS)."""
    columns = {
        "campaign": pa.array([contacts.names[i] for i in contacts.campaign], pa.string()),
        "customer_id": customer_ids.take(pa.array(contacts.customer, pa.int64())),
        "channel": pa.array([RETENTION_CHANNELS[i] for i in contacts.channel], pa.string()),
        "treated": pa.array(contacts.treated),
        **{name: pa.array(outcomes[name], pa.float64()) for name in
           ("p_retained_treated", "p_retained_control", "effect", "expected_orders_treated",
            "expected_orders_control")},
    }
    return pa.Table.from_pydict(columns, schema=arrow_schema(CAMPAIGN_EFFECTS_COLUMNS))


def start_of(day: int, start: date) -> date:
    return start + timedelta(days=int(day))


# --- continuing the history (ml.sim.advance) ----------------------------------------------

# What `ml generate` drew and how far the history has been played forward: evaluation
# only, so `ml simulate advance` can rebuild the world's latent state and continue it.
SIM_RUNS_TABLE = "sim_runs"
SIM_RUNS_COLUMNS = {"customers": "BIGINT", "seed": "BIGINT", "start": "DATE",
                    "generated_end": "DATE", "end": "DATE", "played_campaigns": "VARCHAR"}


def sim_run_table(customers: int, seed: int, start: date, end: date,
                  current_end: date | None = None, played: tuple[str, ...] = ()) -> pa.Table:
    import json

    return pa.Table.from_pylist([{"customers": customers, "seed": seed, "start": start,
                                  "generated_end": end, "end": current_end or end,
                                  "played_campaigns": json.dumps(list(played))}],
                                schema=arrow_schema(SIM_RUNS_COLUMNS))


def campaign_stream(seed: int, campaign: str) -> np.random.Generator:
    """The outcome draws of one planned campaign's contacts (same seed and campaign, same
    draws, so a later continuation can replay them)."""
    import hashlib

    word = int.from_bytes(hashlib.blake2b(campaign.encode(), digest_size=8).digest(), "big")
    return np.random.Generator(np.random.PCG64([seed, CAMPAIGN_STREAM, word]))


def averse_customers(seed: int, response: np.ndarray) -> np.ndarray:
    """The contact-averse customers: the first draw of the campaigns' stream."""
    return contact_averse(np.random.Generator(np.random.PCG64([seed, CAMPAIGN_STREAM])), response)


def planned_contacts(seed: int, campaign: str, day: int, customer: np.ndarray,
                     channel: np.ndarray, treated: np.ndarray, score_decile: np.ndarray,
                     horizon: int, planned_share: float, signup: np.ndarray,
                     dropout: np.ndarray, response: np.ndarray, basket_ratio: np.ndarray,
                     averse: np.ndarray) -> tuple[Contacts, np.ndarray]:
    """A planned campaign's contacts played on the population: (contacts, new dropout)."""
    rng = campaign_stream(seed, campaign)
    order = np.argsort(customer, kind="stable")
    customer, channel, treated, score_decile = (a[order] for a in
                                                (customer, channel, treated, score_decile))
    save, rescue, backfire = effect_probabilities(response, basket_ratio, day - signup[customer],
                                                  averse, channel, customer)
    days = np.full(customer.size, day)
    horizons = np.full(customer.size, horizon)
    dropout, active, save_at = apply_contacts(rng, dropout, days, customer, treated, horizons,
                                              save, rescue, backfire)
    contacts = Contacts(np.zeros(customer.size, np.int64), customer, days, channel, treated,
                        score_decile, horizons, np.full(customer.size, planned_share), active,
                        save, rescue, backfire, save_at, (campaign,))
    return contacts, dropout
