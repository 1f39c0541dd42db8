"""Play the synthetic world forward: ``ml simulate advance --days N``.

**Mechanism: rebuild, then continue.** ``ml generate`` records its arguments in
``eval.sim_runs`` (evaluation only). Advancing rebuilds the world's latent state from them
(``ml.sim.history._world``: the same seed gives the same customers, traits, dropout times
after the past campaigns, catalogue and item world), replays the dropout changes of every
planned campaign played before (each campaign's outcome draws come from its own stream,
``campaign_stream(seed, campaign)``), plays the newest plan's contacts, and simulates
every customer's life on the next N days with the history's own functions on a calendar
that continues the original one (same rate normalisation; events from ``window_start``).
New events are appended to the raw tables, the plan's assignments to
``raw.campaign_assignments``, their true effects to ``eval.campaign_effects``, snapshot
oracle rows for the new month starts to ``eval.oracle_labels``; all in one atomic replace.

**The plan that is played** is the latest in ``ml.campaign_targets`` whose campaign is not
in ``raw.campaign_assignments`` yet: its treated customers are contacted on the first
day after the data's end (``assigned_at``; the plan's as-of date when it is that day), its
control customers are not; the design's control share and horizon come from
``ml.campaign_designs``. Without such a plan the world just moves on.

**Run twice**: each run continues from where the last one ended (the second advances a
further N days) and plays a plan only once (its assignments are then in raw), so a rerun
never duplicates events or contacts; the same seed, plans and steps give the same data.

Approximations, stated: no new customers sign up after the original window (only
existing customers' lives continue); the item world stays in its last month (products do
not launch or retire in the continuation); bursts due from touches made in the last week
before a continuation starts are dropped, in the simulation and in the truth alike; the
item oracle is not extended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.schema import CAMPAIGN_EFFECTS_TABLE, ORACLE_TABLE
from ml.settings import EVAL_SCHEMA, ML_SCHEMA, RAW_SCHEMA
from ml.sim import campaigns, history, items
from ml.warehouse import get_warehouse

ADVANCE_STREAM = 0xADA
EVENT_TABLES = ("orders", "order_items", "sessions", "marketing_touches")


class AdvanceError(ValueError):
    """The history cannot be advanced; nothing was written."""


@dataclass(frozen=True)
class AdvanceSummary:
    start: date  # first new day
    end: date  # last new day
    campaign: str | None  # the plan played, if any
    contacted: int
    control: int
    row_counts: dict[str, int]  # rows appended per table
    note: str


def _sim_run(wh) -> dict:
    if not wh.table_exists(EVAL_SCHEMA, campaigns.SIM_RUNS_TABLE):
        raise AdvanceError(
            f"{EVAL_SCHEMA}.{campaigns.SIM_RUNS_TABLE} is missing: only a history made by "
            "`ml generate` (this version) can be advanced; regenerate it")
    rows = wh.query(f"SELECT * FROM {wh.relation(EVAL_SCHEMA, campaigns.SIM_RUNS_TABLE)}",
                    stage="sim run").to_pylist()
    if len(rows) != 1:
        raise AdvanceError(f"{EVAL_SCHEMA}.{campaigns.SIM_RUNS_TABLE} has {len(rows)} rows, "
                           "expected 1: regenerate the history")
    run = {**rows[0], "played_campaigns": json.loads(rows[0]["played_campaigns"])}
    # eval.sim_runs outlives an `ml import` of real data: only continue the generator's own
    customers = (int(wh.scalar(f"SELECT count(*) FROM {wh.relation(RAW_SCHEMA, 'customers')}",
                               stage="customers")) if wh.table_exists(RAW_SCHEMA, "customers")
                 else None)
    last = (wh.scalar(f"SELECT max(ordered_at) FROM {wh.relation(RAW_SCHEMA, 'orders')}",
                      stage="last order") if wh.table_exists(RAW_SCHEMA, "orders") else None)
    if customers != run["customers"] or last is None or last.date() > run["end"]:
        raise AdvanceError(
            f"the raw tables are not the history {EVAL_SCHEMA}.{campaigns.SIM_RUNS_TABLE} "
            f"describes ({run['customers']:,} generated customers up to {run['end']}; raw has "
            f"{customers} customers, last order {last}): was other data imported? Regenerate "
            "with `ml generate` to advance a synthetic history")
    return run


def _next_plan(wh, played: list[str]) -> tuple[str, date, object] | None:
    """(campaign, as_of, targets) of the newest plan not played yet, or None."""
    if not wh.table_exists(ML_SCHEMA, "campaign_targets"):
        return None
    targets = wh.relation(ML_SCHEMA, "campaign_targets")
    as_of = wh.scalar(f"SELECT max(as_of_date) FROM {targets}", stage="latest plan")
    if as_of is None:
        return None
    campaign = f"retention-{as_of}"
    assigned = set()
    if wh.table_exists(RAW_SCHEMA, "campaign_assignments"):
        assigned = {r["campaign"] for r in wh.query(
            f"SELECT DISTINCT campaign FROM {wh.relation(RAW_SCHEMA, 'campaign_assignments')}",
            stage="assigned campaigns").to_pylist()}
    if campaign in assigned or campaign in played:
        return None
    deciles = ""
    if wh.table_exists(ML_SCHEMA, "scores"):
        deciles = (f"LEFT JOIN {wh.relation(ML_SCHEMA, 'scores')} s ON s.customer_id = "
                   "t.customer_id AND s.as_of_date = t.as_of_date AND s.model_name = 'churn'")
    decile = "s.decile" if deciles else "CAST(NULL AS INTEGER)"
    frame = wh.read_arrow(
        f"SELECT t.customer_id, t.channel, t.\"group\" = 'treatment' AS treated, "
        f"{decile} AS score_decile FROM {targets} t {deciles} WHERE t.as_of_date = ? "
        "ORDER BY t.customer_id", [as_of], stage="plan to play").to_pandas()
    return campaign, as_of, frame


def _design(wh, as_of: date) -> tuple[float | None, int]:
    if wh.table_exists(ML_SCHEMA, "campaign_designs"):
        rows = wh.query(f"SELECT control_share, horizon_days FROM "
                        f"{wh.relation(ML_SCHEMA, 'campaign_designs')} WHERE as_of_date = ?",
                        [as_of], stage="plan design").to_pylist()
        if rows:
            return float(rows[0]["control_share"]), int(rows[0]["horizon_days"])
    if wh.table_exists(ML_SCHEMA, "campaign_summary"):
        share = wh.scalar(f"SELECT max(control_share) FROM "
                          f"{wh.relation(ML_SCHEMA, 'campaign_summary')} WHERE as_of_date = ?",
                          [as_of], stage="plan summary")
        return (None if share is None else float(share)), campaigns.PAST_HORIZON_DAYS
    return None, campaigns.PAST_HORIZON_DAYS


def _next_id(wh, table: str, column: str) -> int:
    value = wh.scalar(f"SELECT max(CAST(substr({column}, 2) AS BIGINT)) FROM "
                      f"{wh.relation(RAW_SCHEMA, table)}", stage=f"next {column}")
    return 0 if value is None else int(value) + 1


def _with_dropout(population, dropout: np.ndarray):
    traits = {f.name: getattr(population, f.name) for f in fields(population)}
    return type(population)(**{**traits, "dropout": dropout})


def advance(days: int) -> AdvanceSummary:
    """Continue the history by ``days`` days (see the module docstring)."""
    if not 1 <= days <= 366:
        raise AdvanceError(f"days must be between 1 and 366, got {days}")
    wh = get_warehouse()
    run = _sim_run(wh)
    seed, start, generated_end = int(run["seed"]), run["start"], run["generated_end"]
    current_end, played = run["end"], list(run["played_campaigns"])
    cal, _, population, _, catalogue, chunks, chunk_rngs, world = history._world(
        int(run["customers"]), seed, start, generated_end)
    customer_ids = history._ids("C", np.arange(population.size), 7)
    id_index = {cid: i for i, cid in enumerate(customer_ids.to_pylist())}
    response = campaigns.channel_response(
        history._touch_response(population), history.TOUCH_CHANNELS,
        population.touch_rate[:, history.TOUCH_CHANNELS.index("CRM")] > 0)
    basket_ratio = population.basket / history.MEDIAN_BASKET
    averse = campaigns.averse_customers(seed, response)
    dropout = population.dropout

    def contacts_of(campaign: str, frame, day: int, horizon: int, share: float | None):
        channel = np.array([campaigns.RETENTION_CHANNELS.index(c) for c in frame["channel"]],
                           dtype=np.int64)
        deciles = frame["score_decile"].fillna(-1).to_numpy(np.int64)
        return campaigns.planned_contacts(
            seed, campaign, day, np.array([id_index[c] for c in frame["customer_id"]]),
            channel, frame["treated"].to_numpy(bool), deciles, horizon,
            np.nan if share is None else share, population.signup, dropout, response,
            basket_ratio, averse)

    for campaign in played:  # replay the dropout changes of the plans played before
        frame = wh.read_arrow(
            f"SELECT customer_id, channel, treated, score_decile, assigned_at, horizon_days, "
            f"planned_control_share FROM {wh.relation(RAW_SCHEMA, 'campaign_assignments')} "
            "WHERE campaign = ? ORDER BY customer_id", [campaign], stage="replay").to_pandas()
        day = (frame["assigned_at"].iloc[0].date() - start).days
        _, dropout = contacts_of(campaign, frame, day, int(frame["horizon_days"].iloc[0]),
                                 frame["planned_control_share"].iloc[0])

    tail_start = (current_end - start).days + 1  # the first new day, in days since start
    first_day, last_day = current_end + timedelta(days=1), current_end + timedelta(days=days)
    plan = _next_plan(wh, played)
    contacts, note = campaigns.empty_contacts(), "no new plan to play: the world just moves on"
    if plan is not None:
        campaign, as_of, frame = plan
        share, horizon = _design(wh, as_of)
        contacts, dropout = contacts_of(campaign, frame, tail_start, horizon, share)
        played.append(campaign)
        note = (f"played {campaign}: {int(contacts.treated.sum()):,} contacted, "
                f"{int((~contacts.treated).sum()):,} held out, assigned {first_day}"
                + ("" if as_of == first_day else f" (the plan's as-of date is {as_of})"))
    population = _with_dropout(population, dropout)

    n_days = (last_day - start).days + 1
    tail = replace(history._calendar(start, last_day, normalise_days=cal.n_days),
                   window_start=float(tail_start))
    last_month = world.log_popularity.shape[0] - 1
    for_items = replace(tail, month_index=np.minimum(tail.month_index, last_month))
    truth_cal = history._calendar(start, last_day, normalise_days=cal.n_days,
                                  snapshot_days=np.array([tail_start]))
    names = history._campaign_names(tail)
    next_ids = {"orders": _next_id(wh, "orders", "order_id"),
                "sessions": _next_id(wh, "sessions", "session_id"),
                "touches": _next_id(wh, "marketing_touches", "touch_id")}
    parts: dict[str, list[pa.Table]] = {}
    for index, (rows, chunk_rng) in enumerate(zip(chunks, chunk_rngs, strict=True)):
        c = population.take(rows)
        ids = customer_ids[rows.start:rows.stop]
        mine = contacts.for_rows(rows.start, rows.stop)
        shoppers = items.draw_shoppers(
            chunk_rng.spawn(1)[0], world, c.taste, c.basket / history.MEDIAN_BASKET,
            cal.month_index[np.floor(np.maximum(c.signup, 0.0)).astype(np.int64)])
        rng = np.random.Generator(np.random.PCG64([seed, ADVANCE_STREAM, tail_start, index]))
        touches = history._simulate_touches(rng, c, tail)
        orders = history._simulate_orders(rng, c, tail, touches,
                                          history._save_orders(c, tail, mine))
        orders_table, items_table = history._order_tables(
            rng, c, for_items, orders, catalogue, world, shoppers, ids, next_ids["orders"])
        sessions = history._session_table(rng, c, tail, orders, touches, ids,
                                          next_ids["sessions"])
        touch_table = history._touch_table(rng, tail, touches, names, ids, next_ids["touches"])
        oracle = history._oracle_chunk(c, ids, tail, touches)
        new_snapshots = pc.greater(oracle["as_of_date"],
                                   pa.scalar(current_end + timedelta(days=1), pa.date32()))
        chunk = {"orders": orders_table, "order_items": items_table, "sessions": sessions,
                 "marketing_touches": touch_table, "oracle": oracle.filter(new_snapshots)}
        if mine.size:
            chunk["campaign_assignments"] = campaigns.assignment_table(mine, ids, start)
            chunk["campaign_effects"] = campaigns.effects_table(
                mine, ids, history._campaign_outcomes(c, truth_cal, touches, mine))
        for name, table in chunk.items():
            parts.setdefault(name, []).append(table)
        next_ids["orders"] += orders_table.num_rows
        next_ids["sessions"] += sessions.num_rows
        next_ids["touches"] += touch_table.num_rows

    appended = {f"{RAW_SCHEMA}.{t}": pa.concat_tables(parts[t]) for t in EVENT_TABLES}
    appended[f"{EVAL_SCHEMA}.{ORACLE_TABLE}"] = pa.concat_tables(parts["oracle"])
    if "campaign_assignments" in parts:
        appended[f"{RAW_SCHEMA}.campaign_assignments"] = pa.concat_tables(
            parts["campaign_assignments"])
        appended[f"{EVAL_SCHEMA}.{CAMPAIGN_EFFECTS_TABLE}"] = pa.concat_tables(
            parts["campaign_effects"])
    tables = {}
    for name, new in appended.items():
        schema, table = name.split(".")
        old = (wh.read_arrow(f"SELECT * FROM {wh.relation(schema, table)}", stage=f"{name}")
               if wh.table_exists(schema, table) else new.schema.empty_table())
        tables[name] = pa.concat_tables([old.cast(new.schema), new])
    tables[f"{EVAL_SCHEMA}.{campaigns.SIM_RUNS_TABLE}"] = campaigns.sim_run_table(
        int(run["customers"]), seed, start, generated_end, last_day, tuple(played))
    assert n_days == tail.n_days
    wh.replace_tables(tables)
    return AdvanceSummary(first_day, last_day, played[-1] if plan else None,
                          int(contacts.treated.sum()), int((~contacts.treated).sum()),
                          {name: t.num_rows for name, t in appended.items()}, note)
