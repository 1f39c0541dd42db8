"""The recommendation marts of one snapshot as sparse matrices over that snapshot's catalogue.

Columns are the items known at the snapshot (sold before it: ``marts.recommendation_catalogue``),
so an item unknown at a cutoff has no column and cannot be recommended there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ml.warehouse import Warehouse, get_warehouse

MARTS_SCHEMA = "marts"


class RecommendationDataError(ValueError):
    """The marts cannot feed a recommender; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """Histories before ``as_of`` over the catalogue known at ``as_of``."""

    as_of: date
    customers: np.ndarray  # (users,) customer ids, row order of the matrices
    items: np.ndarray  # (items,) product ids, column order
    item_category: np.ndarray  # (items,) category codes
    item_buyers_30d: np.ndarray
    item_buyers_90d: np.ndarray
    item_buyers: np.ndarray
    item_is_current: np.ndarray  # sold in the last catalogue_active_days days
    orders: sp.csr_matrix  # (users, items) orders that held the item
    orders_90d: sp.csr_matrix
    days_since_last: sp.csr_matrix  # days between the last purchase and as_of (>= 1)

    @property
    def n_items(self) -> int:
        return self.items.size

    def rows(self, customers: np.ndarray) -> np.ndarray:
        """Row of each customer id (-1: no history at this snapshot)."""
        position = {c: i for i, c in enumerate(self.customers)}
        return np.array([position.get(c, -1) for c in customers], np.int64)


def snapshots(warehouse: Warehouse | None = None) -> list[date]:
    """The recommendation snapshots with matured labels, oldest first, and the scoring one."""
    wh = warehouse or get_warehouse()
    rows = wh.query(
        f"SELECT DISTINCT as_of_date FROM {wh.relation(MARTS_SCHEMA, 'recommendation_catalogue')} "
        "ORDER BY as_of_date", stage="recommendation snapshots").column("as_of_date").to_pylist()
    return rows


def labelled_snapshots(warehouse: Warehouse | None = None) -> list[date]:
    wh = warehouse or get_warehouse()
    return wh.query(
        f"SELECT DISTINCT as_of_date FROM {wh.relation(MARTS_SCHEMA, 'recommendation_labels')} "
        "ORDER BY as_of_date", stage="recommendation label snapshots").column(
            "as_of_date").to_pylist()


def load_snapshot(as_of: date, warehouse: Warehouse | None = None) -> Snapshot:
    wh = warehouse or get_warehouse()
    catalogue = wh.query(
        f"SELECT product_id, coalesce(category, '') AS category, buyers, buyers_30d, buyers_90d, "
        f"is_current FROM {wh.relation(MARTS_SCHEMA, 'recommendation_catalogue')} "
        "WHERE as_of_date = ? ORDER BY product_id", [as_of], stage="recommendation catalogue")
    if catalogue.num_rows == 0:
        raise RecommendationDataError(
            f"The catalogue at {as_of} is empty: no completed order line with a product id "
            "before it. Load order_items (`ml generate` or `ml import --order-items FILE`) and "
            "rebuild the features.")
    history = wh.query(
        f"SELECT customer_id, product_id, orders, orders_90d, last_ordered_at "
        f"FROM {wh.relation(MARTS_SCHEMA, 'recommendation_interactions')} "
        "WHERE as_of_date = ? ORDER BY customer_id", [as_of], stage="recommendation history")
    return from_tables(as_of, catalogue, history)


def from_tables(as_of: date, catalogue: pa.Table, history: pa.Table) -> Snapshot:
    """A snapshot from a catalogue (product_id, category, buyers*, is_current) and histories
    (customer_id, product_id, orders, orders_90d, last_ordered_at). Days since the last
    purchase are computed here, not in SQL, because date differences are spelled
    differently on every engine."""
    items = np.asarray(catalogue.column("product_id").to_pylist(), dtype=object)
    if any(item is None for item in items):
        raise RecommendationDataError("the catalogue holds a null product id")
    item_index = {item: i for i, item in enumerate(items)}
    customers_col = np.asarray(history.column("customer_id").to_pylist(), dtype=object)
    customers, user = np.unique(customers_col, return_inverse=True)
    item = np.array([item_index.get(p, -1) for p in history.column("product_id").to_pylist()],
                    np.int64)
    known = item >= 0  # histories only hold catalogue items; guard against a stale mart
    shape = (customers.size, items.size)

    def matrix(values) -> sp.csr_matrix:
        values = np.asarray(values, np.float32)[known]
        return sp.csr_matrix((values, (user[known], item[known])), shape=shape)

    categories, category_code = np.unique(
        np.asarray(catalogue.column("category").to_pylist(), dtype=object), return_inverse=True)
    return Snapshot(
        as_of=as_of,
        customers=customers,
        items=items,
        item_category=category_code,
        item_buyers_30d=np.asarray(catalogue.column("buyers_30d"), np.float64),
        item_buyers_90d=np.asarray(catalogue.column("buyers_90d"), np.float64),
        item_buyers=np.asarray(catalogue.column("buyers"), np.float64),
        item_is_current=np.asarray(catalogue.column("is_current"), bool),
        orders=matrix(history.column("orders")),
        orders_90d=matrix(history.column("orders_90d")),
        days_since_last=matrix(
            np.maximum(_days_before(history.column("last_ordered_at"), as_of), 1)),
    )


def _days_before(timestamps: pa.ChunkedArray, as_of: date) -> np.ndarray:
    last = np.asarray(timestamps.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False),
                      "datetime64[D]")
    return (np.datetime64(as_of, "D") - last).astype(np.int64)


def load_labels(as_of: date, warehouse: Warehouse | None = None) -> dict[str, set[str]]:
    """Products each customer bought in the horizon after ``as_of``."""
    wh = warehouse or get_warehouse()
    table = wh.query(
        f"SELECT customer_id, product_id FROM {wh.relation(MARTS_SCHEMA, 'recommendation_labels')}"
        " WHERE as_of_date = ?", [as_of], stage="recommendation labels")
    labels: dict[str, set[str]] = {}
    for customer, product in zip(table.column("customer_id").to_pylist(),
                                 table.column("product_id").to_pylist(), strict=True):
        labels.setdefault(customer, set()).add(product)
    return labels
