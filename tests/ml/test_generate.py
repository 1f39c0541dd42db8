"""The synthetic generator: contract, sanity, realism and an honest oracle."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from ml.schema import (
    CAMPAIGN_EFFECTS_TABLE,
    ITEM_ORACLE_COLUMNS,
    ITEM_ORACLE_TABLE,
    MEDIA_TRUTH_TABLE,
    ORACLE_COLUMNS,
    ORACLE_HORIZONS,
    ORACLE_TABLE,
    RAW_TABLES,
    oracle_column,
)
from ml.sim.history import GenerationSummary, generate, generate_tables

START, END = date(2023, 1, 1), date(2025, 12, 31)
ORACLE = f"eval.{ORACLE_TABLE}"
ITEM_ORACLE = f"eval.{ITEM_ORACLE_TABLE}"
MEDIA_TRUTH = f"eval.{MEDIA_TRUTH_TABLE}"
CAMPAIGN_EFFECTS = f"eval.{CAMPAIGN_EFFECTS_TABLE}"
ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
}


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return generate_tables(customers=2000, seed=11, start=START, end=END)


@pytest.fixture(scope="module")
def con(tables) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name.split(".")[1], table)
    yield connection
    connection.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def test_same_seed_same_tables_other_seed_other_tables():
    first = generate_tables(customers=300, seed=3, start=START, end=END)
    again = generate_tables(customers=300, seed=3, start=START, end=END)
    other = generate_tables(customers=300, seed=4, start=START, end=END)
    assert list(first) == list(again)
    for name in first:
        assert first[name].equals(again[name]), name
    assert not first["raw.orders"].equals(other["raw.orders"])


def test_tables_match_the_contract_exactly(tables):
    assert set(tables) == {f"raw.{name}" for name in RAW_TABLES} | {ORACLE, ITEM_ORACLE,
                                                                     MEDIA_TRUTH, CAMPAIGN_EFFECTS}
    for name, columns in RAW_TABLES.items():
        schema = tables[f"raw.{name}"].schema
        assert schema.names == list(columns), name
        assert schema.types == [ARROW_TYPES[kind] for kind in columns.values()], name
    oracle = tables[ORACLE].schema
    assert oracle.names == list(ORACLE_COLUMNS)
    assert oracle.types == [ARROW_TYPES[kind] for kind in ORACLE_COLUMNS.values()]
    item_oracle = tables[ITEM_ORACLE].schema
    assert item_oracle.names == list(ITEM_ORACLE_COLUMNS)
    assert item_oracle.types == [ARROW_TYPES[kind] for kind in ITEM_ORACLE_COLUMNS.values()]


def test_ids_are_unique_and_shaped(con):
    for table, column, prefix in [
        ("customers", "customer_id", "C"),
        ("orders", "order_id", "O"),
        ("sessions", "session_id", "S"),
        ("marketing_touches", "touch_id", "T"),
    ]:
        total, distinct, shaped = con.execute(
            f"select count(*), count(distinct {column}), "
            f"count(*) filter (where {column} like '{prefix}%') from {table}"
        ).fetchone()
        assert total == distinct == shaped > 0, table
    assert scalar(con, "select min(length(customer_id)) from customers") == 8  # C0000123
    assert (
        scalar(
            con,
            "select count(*) from (select order_id, line_number from order_items "
            "group by all having count(*) > 1)",
        )
        == 0
    )


@pytest.mark.parametrize(
    "table, column",
    [
        ("orders", "ordered_at"),
        ("sessions", "started_at"),
        ("marketing_touches", "touched_at"),
    ],
)
def test_events_lie_after_signup_and_inside_the_window(con, table, column):
    before_signup = scalar(
        con,
        f"select count(*) from {table} e join customers c using (customer_id) "
        f"where e.{column} < c.signed_up_at",
    )
    assert before_signup == 0
    orphans = scalar(con, f"select count(*) from {table} anti join customers using (customer_id)")
    assert orphans == 0
    first, last = con.execute(f"select min({column}), max({column}) from {table}").fetchone()
    assert first.date() >= START
    assert last.date() <= END


def test_values_are_within_their_sets(con):
    def distinct(table: str, column: str) -> set[str]:
        return {row[0] for row in con.execute(f"select distinct {column} from {table}").fetchall()}

    assert distinct("orders", "status") == {"completed", "returned", "cancelled"}
    assert distinct("orders", "order_channel") == {"web", "app", "store"}
    assert distinct("customers", "acquisition_channel") == {
        "SEM",
        "SEO",
        "CRM",
        "Display",
        "Direct",
        "Referral",
    }
    assert (
        {"SEM", "SEO", "CRM", "Display"}
        <= distinct("marketing_touches", "channel")
        <= {"SEM", "SEO", "CRM", "Display", "Social"}
    )
    assert scalar(con, "select min(revenue) from orders") > 0
    assert scalar(con, "select min(discount) from orders") >= 0
    assert scalar(con, "select min(cost) from marketing_touches") >= 0
    assert scalar(con, "select min(quantity) from order_items") >= 1
    assert scalar(con, "select min(page_views) from sessions") >= 1
    assert scalar(con, "select min(cart_adds) from sessions") >= 0
    assert scalar(con, "select count(*) from order_items where category is null") == 0


def test_order_items_reference_orders_and_add_up(con):
    orphans = scalar(con, "select count(*) from order_items anti join orders using (order_id)")
    assert orphans == 0
    assert scalar(con, "select count(*) from orders anti join order_items using (order_id)") == 0
    lines = con.execute(
        "select min(n), max(n) from (select count(*) n from order_items group by order_id)"
    ).fetchone()
    assert lines == (1, 5)
    worst_gap = scalar(
        con,
        "select max(abs(i.list_value - o.revenue - o.discount)) from orders o join "
        "(select order_id, sum(price * quantity) list_value from order_items group by 1) i "
        "using (order_id)",
    )
    assert worst_gap < 0.02


def test_volumes_and_shares_are_plausible(con):
    customers = scalar(con, "select count(*) from customers")
    assert 4 <= scalar(con, "select count(*) from orders") / customers <= 14
    assert 15 <= scalar(con, "select count(*) from sessions") / customers <= 60
    assert 25 <= scalar(con, "select count(*) from marketing_touches") / customers <= 80
    returned = scalar(con, "select avg((status = 'returned')::int) from orders")
    cancelled = scalar(con, "select avg((status = 'cancelled')::int) from orders")
    assert 0.05 <= returned <= 0.11
    assert 0.02 <= cancelled <= 0.06
    # Frequencies are heavy-tailed: the top decile of customers places many more orders.
    p50, p90 = con.execute(
        "select quantile_cont(n, 0.5), quantile_cont(n, 0.9) from (select count(o.order_id) n "
        "from customers left join orders o using (customer_id) group by customer_id)"
    ).fetchone()
    assert p90 >= 4 * max(p50, 1)
    # Some customers predate the window, most sign up during it.
    before_start = scalar(con, f"select avg((signed_up_at < date '{START}')::int) from customers")
    assert 0.2 <= before_start <= 0.4


def test_holiday_season_peaks(con):
    per_day = con.execute(
        "select count(*) filter (where month(ordered_at) in (11, 12)) / (61.0 * 3), "
        "count(*) filter (where month(ordered_at) in (2, 3, 4)) / (89.0 * 3) from orders"
    ).fetchone()
    assert per_day[0] > 1.3 * per_day[1]


def test_clicked_touches_raise_purchases_in_the_next_week(con):
    rates = dict(
        con.execute(
            "select t.clicked, avg((exists (select 1 from orders o where o.customer_id = "
            "t.customer_id and o.status = 'completed' and o.ordered_at >= t.touched_at and "
            "o.ordered_at < t.touched_at + interval 7 day))::int) "
            "from marketing_touches t group by 1"
        ).fetchall()
    )
    assert rates[True] > 2 * rates[False]


def test_customers_drop_out_silently(con):
    silent_share = scalar(
        con,
        "with first_year as (select distinct customer_id from orders "
        "where ordered_at < date '2024-01-01'), "
        "last_half as (select distinct customer_id from orders "
        "where ordered_at >= date '2025-07-01') "
        "select avg((l.customer_id is null)::int) from first_year f "
        "left join last_half l using (customer_id)",
    )
    assert 0.3 <= silent_share <= 0.8
    # Touches go on after dropout; the customer just stops answering.
    assert (
        scalar(
            con,
            "select count(*) from marketing_touches t join "
            "(select customer_id, max(ordered_at) last from orders group by 1) o "
            "using (customer_id) "
            "where t.touched_at > o.last + interval 365 day",
        )
        > 0
    )


def test_oracle_covers_signed_up_customers_at_month_starts(con):
    as_of_dates = [
        row[0]
        for row in con.execute(
            f"select distinct as_of_date from {ORACLE_TABLE} order by 1"
        ).fetchall()
    ]
    assert as_of_dates[0] == date(2023, 2, 1)
    assert as_of_dates[-1] == date(2026, 1, 1)
    assert len(as_of_dates) == 36
    expected = scalar(
        con,
        f"select count(*) from customers c join (select distinct as_of_date from {ORACLE_TABLE}) "
        "d on c.signed_up_at < d.as_of_date",
    )
    assert scalar(con, f"select count(*) from {ORACLE_TABLE}") == expected
    assert (
        scalar(
            con, f"select count(*) - count(distinct (customer_id, as_of_date)) from {ORACLE_TABLE}"
        )
        == 0
    )


def test_oracle_probabilities_are_consistent(con):
    columns = [oracle_column(h) for h in ORACLE_HORIZONS]
    low, high, rising = con.execute(
        f"select least({', '.join(f'min({c})' for c in columns)}), "
        f"greatest({', '.join(f'max({c})' for c in columns)}), "
        # no order within a longer horizon implies none within a shorter one
        "count(*) filter (where " + " or ".join(
            f"{longer} > {shorter} + 1e-9" for shorter, longer in pairwise(columns))
        + f") from {ORACLE_TABLE}"
    ).fetchone()
    assert 0.0 <= low and high <= 1.0 and rising == 0
    # Customers who dropped out: certain churn, no purchase, and indeed no order ever again.
    dropped, not_certain, ordered_again = con.execute(
        "select count(*), count(*) filter (where p_no_order_30d < 1), "
        "count(*) filter (where exists (select 1 from orders o where o.customer_id = "
        "l.customer_id and o.ordered_at >= l.as_of_date)) "
        f"from {ORACLE_TABLE} l where p_no_order_90d = 1"
    ).fetchone()
    assert dropped > 0.1 * scalar(con, f"select count(*) from {ORACLE_TABLE}")
    assert not_certain == 0 and ordered_again == 0


def test_oracle_is_calibrated_and_beats_recency(con):
    frame = con.execute(
        "with snapshots as (select * from oracle_labels where as_of_date in "
        "(date '2024-07-01', date '2025-01-01', date '2025-07-01')) "
        "select s.p_no_order_90d as p_churn, 1 - s.p_no_order_30d as p_purchase, "
        "not exists (select 1 from orders o where o.customer_id = s.customer_id "
        "and o.status = 'completed' and o.ordered_at >= s.as_of_date "
        "and o.ordered_at < s.as_of_date + interval 90 day) as churned, "
        "exists (select 1 from orders o where o.customer_id = s.customer_id "
        "and o.status = 'completed' and o.ordered_at >= s.as_of_date "
        "and o.ordered_at < s.as_of_date + interval 30 day) as purchased, "
        "date_diff('day', coalesce((select max(o.ordered_at) from orders o "
        "where o.customer_id = s.customer_id and o.status = 'completed' "
        "and o.ordered_at < s.as_of_date), c.signed_up_at), s.as_of_date) as recency "
        "from snapshots s join customers c using (customer_id)"
    ).fetchnumpy()
    churned = frame["churned"].astype(int)
    purchased = frame["purchased"].astype(int)
    assert abs(frame["p_churn"].mean() - churned.mean()) < 0.03
    assert abs(frame["p_purchase"].mean() - purchased.mean()) < 0.03

    oracle_auc = roc_auc_score(churned, frame["p_churn"])
    recency_auc = roc_auc_score(churned, frame["recency"])
    assert oracle_auc > 0.85
    assert oracle_auc > recency_auc + 0.02
    assert (
        roc_auc_score(purchased, frame["p_purchase"])
        > roc_auc_score(purchased, -frame["recency"]) + 0.02
    )
    # Not a leak: no score separates perfectly.
    assert oracle_auc < 0.99 and np.std(frame["p_churn"]) > 0


def test_generate_writes_every_table_to_the_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    summary = generate(
        customers=200, seed=5, start=START, end=date(2023, 12, 31), warehouse_path=path
    )
    assert isinstance(summary, GenerationSummary)
    assert summary.seconds > 0 and summary.peak_rss_mb > 0
    assert set(summary.row_counts) == {f"raw.{name}" for name in RAW_TABLES} | {
        ORACLE, ITEM_ORACLE, MEDIA_TRUTH, CAMPAIGN_EFFECTS, "eval.sim_runs"}
    assert summary.row_counts["raw.customers"] == 200
    with duckdb.connect(str(path), read_only=True) as con:
        for name, rows in summary.row_counts.items():
            assert scalar(con, f"select count(*) from {name}") == rows > 0, name
        for schema, table, columns in [
            *(("raw", name, columns) for name, columns in RAW_TABLES.items()),
            ("eval", ORACLE_TABLE, ORACLE_COLUMNS),
            ("eval", ITEM_ORACLE_TABLE, ITEM_ORACLE_COLUMNS),
        ]:
            described = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            assert described == list(columns.items()), table
        assert (
            scalar(
                con,
                "select count(*) from information_schema.tables "
                f"where table_schema = 'raw' and table_name = '{ORACLE_TABLE}'",
            )
            == 0
        )
