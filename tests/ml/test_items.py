"""The item world of the synthetic history: on-sale products only, deterministic, learnable."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pytest

from ml.schema import ITEM_ORACLE_HORIZON_DAYS, ITEM_ORACLE_TABLE
from ml.sim import items
from ml.sim.history import generate_tables


def _world_and_shoppers(seed: int, n_customers: int = 300, n_months: int = 24):
    rng = np.random.default_rng(seed)
    prices = np.sort(np.exp(rng.normal(3, 0.7, (8, items.PRODUCTS_PER_CATEGORY))), axis=1)
    world = items.draw_world(rng, prices, n_months)
    taste = rng.dirichlet(np.ones(8), n_customers)
    shoppers = items.draw_shoppers(
        rng, world, taste, np.exp(rng.normal(0, 0.3, n_customers)), np.zeros(n_customers, int)
    )
    return rng, world, taste, shoppers


def test_lines_only_take_products_on_sale_and_the_catalogue_turns_over():
    rng, world, taste, shoppers = _world_and_shoppers(seed=1)
    customer = rng.integers(0, 300, 20_000)
    month = rng.integers(0, 24, customer.size)
    category = rng.integers(0, 8, customer.size)
    item = items.choose_products(rng, world, shoppers, customer, month, category)
    assert world.on_sale[month, item].all()
    launched = (~world.on_sale[0]) & world.on_sale[-1]
    retired = world.on_sale[0] & ~world.on_sale[-1]
    assert launched.sum() > 100 and retired.sum() > 100


def test_same_seed_same_products_other_seed_other_products():
    def products(seed):
        rng, world, _, shoppers = _world_and_shoppers(seed)
        customer = np.arange(300).repeat(5)
        return items.choose_products(
            rng, world, shoppers, customer, np.full(customer.size, 3), customer % 8
        )

    assert np.array_equal(products(7), products(7))
    assert not np.array_equal(products(7), products(8))


def test_line_probabilities_are_a_distribution():
    _, world, taste, shoppers = _world_and_shoppers(seed=2, n_customers=50)
    prob = items._line_probabilities(world, shoppers, taste, np.arange(50), 5)
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    assert (prob[:, ~world.on_sale[5]] == 0).all()


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    tables = generate_tables(customers=1500, seed=3, start=date(2023, 1, 1),
                             end=date(2024, 6, 30))
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name.split(".")[1], table)
    connection.execute("""
        create view lines as
        select o.customer_id, o.ordered_at, i.product_id
        from order_items i join orders o using (order_id) where o.status = 'completed'
    """)
    yield connection
    connection.close()


def _recall_at_10(con, ranking_sql: str) -> float:
    """Mean over (customer, snapshot) with a purchase in the horizon of the share of the
    bought products found in the top 10 of ``ranking_sql`` (customer_id, as_of_date,
    product_id, rank)."""
    return con.execute(f"""
        with bought as (
            select distinct s.customer_id, s.as_of_date, l.product_id
            from (select distinct customer_id, as_of_date from {ITEM_ORACLE_TABLE}) s
            join lines l on l.customer_id = s.customer_id
             and l.ordered_at >= s.as_of_date
             and l.ordered_at < s.as_of_date + interval {ITEM_ORACLE_HORIZON_DAYS} day
        ), ranked as ({ranking_sql})
        select avg(hits / n) from (
            select b.customer_id, b.as_of_date, count(*) n, count(r.product_id) hits
            from bought b left join ranked r
              on r.customer_id = b.customer_id and r.as_of_date = b.as_of_date
             and r.product_id = b.product_id and r.rank <= 10
            group by all)
    """).fetchone()[0]


def test_items_are_learnable_and_repeats_matter(con):
    oracle = _recall_at_10(con, f"""
        select customer_id, as_of_date, product_id,
               row_number() over (partition by customer_id, as_of_date order by p_buy desc) rank
        from {ITEM_ORACLE_TABLE}""")
    popularity = _recall_at_10(con, f"""
        with snapshots as (select distinct customer_id, as_of_date from {ITEM_ORACLE_TABLE}),
        counts as (
            select s.as_of_date, l.product_id, count(*) n
            from (select distinct as_of_date from snapshots) s join lines l
              on l.ordered_at < s.as_of_date and l.ordered_at >= s.as_of_date - interval 90 day
            group by all),
        top as (select *, row_number() over (partition by as_of_date order by n desc,
                product_id) rank from counts qualify rank <= 10)
        select s.customer_id, s.as_of_date, t.product_id, t.rank
        from snapshots s join top t using (as_of_date)""")
    repeat_share = con.execute("""
        select 1 - count(distinct (customer_id, product_id)) / count(*) from lines""").fetchone()[0]
    assert oracle > 2 * popularity and oracle > 0.2
    assert 0.15 < repeat_share < 0.6
