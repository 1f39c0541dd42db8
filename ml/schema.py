"""The raw-data contract: tables, columns and DuckDB types that the dbt sources expect.

``orders`` is required; every other table is optional (a missing one means fewer
features). The synthetic generator and the importer both write exactly these columns.
"""

from __future__ import annotations

RAW_TABLES: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "VARCHAR",
        "signed_up_at": "TIMESTAMP",
        "region": "VARCHAR",
        "acquisition_channel": "VARCHAR",  # SEM, SEO, CRM, Display, Direct, Referral
    },
    "orders": {
        "order_id": "VARCHAR",
        "customer_id": "VARCHAR",
        "ordered_at": "TIMESTAMP",
        "revenue": "DOUBLE",  # amount paid, after discount
        "discount": "DOUBLE",  # amount taken off the list price
        "status": "VARCHAR",  # completed, returned, cancelled
        "order_channel": "VARCHAR",  # web, app, store
    },
    "order_items": {
        "order_id": "VARCHAR",
        "line_number": "INTEGER",
        "product_id": "VARCHAR",
        "category": "VARCHAR",
        "quantity": "INTEGER",
        "price": "DOUBLE",  # unit price
    },
    "sessions": {
        "session_id": "VARCHAR",
        "customer_id": "VARCHAR",
        "started_at": "TIMESTAMP",
        "traffic_source": "VARCHAR",
        "page_views": "INTEGER",
        "cart_adds": "INTEGER",
    },
    "marketing_touches": {
        "touch_id": "VARCHAR",
        "customer_id": "VARCHAR",
        "touched_at": "TIMESTAMP",
        "channel": "VARCHAR",  # SEM, SEO, CRM, Display, ...
        "campaign": "VARCHAR",
        "cost": "DOUBLE",
        "clicked": "BOOLEAN",
    },
    "media_spend": {  # one row per day and paid channel (ml.mmm's input)
        "date": "DATE",
        "channel": "VARCHAR",  # SEM, Display, Social, Affiliate, Prospecting, ...
        "spend": "DOUBLE",
        "impressions": "INTEGER",
        "clicks": "INTEGER",
    },
    # Retention-campaign contacts (ml.experiments): one row per (campaign, customer),
    # treated = false for the randomised control group, who are not contacted. channel is
    # one of dbt_project/seeds/retention_channels.csv; score_decile is the decile of the
    # score the campaign was stratified by (null when it had none); planned_control_share is
    # the control share the design intended (the sample-ratio check compares with it; null
    # when unknown). Outcomes are read from the orders in [assigned_at, assigned_at +
    # horizon_days).
    "campaign_assignments": {
        "campaign": "VARCHAR",
        "customer_id": "VARCHAR",
        "assigned_at": "TIMESTAMP",
        "channel": "VARCHAR",
        "treated": "BOOLEAN",
        "score_decile": "INTEGER",
        "horizon_days": "INTEGER",
        "planned_control_share": "DOUBLE",
    },
    # Lift-test readouts (geo-lift or holdout experiments on a paid channel) that calibrate
    # the media-mix model (ml.mmm.calibration): the channel's spend changed by spend_change
    # dollars in total over [start_date, end_date] (negative: spend removed, e.g. a go-dark
    # holdout), and that caused incremental_new_customers (standard_error: its SE), both as
    # the whole market's equivalent. Channels and periods must lie inside media_spend.
    "media_lift_tests": {
        "test_id": "VARCHAR",
        "channel": "VARCHAR",
        "start_date": "DATE",
        "end_date": "DATE",
        "spend_change": "DOUBLE",
        "incremental_new_customers": "DOUBLE",
        "standard_error": "DOUBLE",
    },
}

REQUIRED_TABLES = ("orders",)

# Ground truth from the synthetic generator: evaluation only, never a feature.
ORACLE_TABLE = "oracle_labels"
# P(no completed order in [as_of, as_of + h days) | the latent state) for each horizon h
# here: a spec's oracle reads the column of its own horizon_days (none: no oracle, said so).
ORACLE_HORIZONS = (7, 14, 30, 60, 90)


def oracle_column(horizon_days: int) -> str:
    return f"p_no_order_{horizon_days}d"


ORACLE_COLUMNS: dict[str, str] = {
    "customer_id": "VARCHAR",
    "as_of_date": "DATE",
    **{oracle_column(h): "DOUBLE" for h in ORACLE_HORIZONS},
}


# The true item choice of the synthetic world (ml.sim.items): per snapshot, each active
# customer's most likely products and P(buys it in the next ITEM_ORACLE_HORIZON_DAYS days).
ITEM_ORACLE_TABLE = "item_oracle"
ITEM_ORACLE_HORIZON_DAYS = 30
ITEM_ORACLE_SNAPSHOTS = 4  # the last matured month starts of the window
ITEM_ORACLE_TOP = 20  # enough for the oracle's recall at k <= 20
ITEM_ORACLE_COLUMNS: dict[str, str] = {
    "customer_id": "VARCHAR",
    "as_of_date": "DATE",
    "product_id": "VARCHAR",
    "p_buy": "DOUBLE",
}


# The true media response of the synthetic world (ml.sim.media), per day and paid channel:
# evaluation only (bench/mmm.py compares the media-mix model with it), never a feature.
MEDIA_TRUTH_TABLE = "media_truth"
MEDIA_TRUTH_COLUMNS: dict[str, str] = {
    "date": "DATE",
    "channel": "VARCHAR",
    "spend": "DOUBLE",
    "adstocked_spend": "DOUBLE",
    "contribution": "DOUBLE",  # expected new customers this channel caused that day
    "baseline": "DOUBLE",  # expected new customers without media that day (same per channel)
    "promotion": "DOUBLE",  # 1 on sale days
    "adstock_alpha": "DOUBLE",  # per-day carry-over
    "saturation_k": "DOUBLE",  # dollars per day: contribution = beta * (1 - exp(-adstock / k))
    "beta": "DOUBLE",  # new customers per day at full saturation
}


# The true effect of each campaign contact in the synthetic world (ml.sim.campaigns):
# evaluation only, never a feature. retained = at least one completed order in
# [assigned_at, assigned_at + horizon_days); both potential outcomes are given for every
# assigned customer, treated or control, so effect = p_retained_treated - p_retained_control.
CAMPAIGN_EFFECTS_TABLE = "campaign_effects"
CAMPAIGN_EFFECTS_COLUMNS: dict[str, str] = {
    "campaign": "VARCHAR",
    "customer_id": "VARCHAR",
    "channel": "VARCHAR",
    "treated": "BOOLEAN",
    "p_retained_treated": "DOUBLE",
    "p_retained_control": "DOUBLE",
    "effect": "DOUBLE",
    "expected_orders_treated": "DOUBLE",  # expected completed orders in the horizon
    "expected_orders_control": "DOUBLE",
}

# The synthetic world's ground truth: an import of real data drops every one of them.
TRUTH_TABLES = (ORACLE_TABLE, ITEM_ORACLE_TABLE, MEDIA_TRUTH_TABLE, CAMPAIGN_EFFECTS_TABLE)


def arrow_schema(columns: dict[str, str]):
    """The pyarrow schema of a ``{column: DuckDB type}`` contract (the one type map)."""
    import pyarrow as pa

    types = {"VARCHAR": pa.string(), "TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64(),
             "INTEGER": pa.int32(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(),
             "DATE": pa.date32()}
    return pa.schema([(name, types[kind]) for name, kind in columns.items()])
