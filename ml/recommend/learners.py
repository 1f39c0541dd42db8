"""Recommenders over one snapshot's catalogue: ``fit`` on the histories before the snapshot,
``score`` a block of customers (rows of the snapshot) against every item.

Scores are dense (customers x catalogue): the back-test ranks the full catalogue, never a
sample of negatives. The simple learners are written here in a few lines of numpy/scipy
(the libraries that have them rank only random splits or need Python 3.12); ALS is
``implicit``'s and the ranker is LightGBM's LambdaRank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ml.recommend.data import Snapshot

SCORE_BLOCK = 2048  # customers per dense score block: bounds memory at any catalogue size


class Recommender:
    """``fit(snapshot, past)`` then ``score(rows)``; ``past`` (an earlier snapshot and what
    its customers bought next) is used only by learners that learn from outcomes."""

    def fit(self, snapshot: Snapshot, past: tuple[Snapshot, dict[str, set[str]]] | None = None):
        self.snapshot = snapshot
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def popularity_order(snapshot: Snapshot) -> np.ndarray:
    """Buyers in the last 90 days, ties broken by all-time buyers: every fallback's order."""
    return snapshot.item_buyers_90d + snapshot.item_buyers / (1 + snapshot.item_buyers.max())


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    out = matrix.copy()
    out.data = np.ones_like(out.data)
    return out


@dataclass
class Popularity(Recommender):
    """Customers who bought each item in a trailing window (``30d``, ``90d`` or ``all``)."""

    window: str = "90d"

    def fit(self, snapshot, past=None):
        self.snapshot = snapshot
        buyers = {"30d": snapshot.item_buyers_30d, "90d": snapshot.item_buyers_90d,
                  "all": snapshot.item_buyers}[self.window]
        # the all-time count breaks ties (and ranks items not sold in the window)
        self.item_scores = (buyers + snapshot.item_buyers / (1 + snapshot.item_buyers.max()))
        return self

    def score(self, rows):
        return np.broadcast_to(self.item_scores.astype(np.float32),
                               (rows.size, self.snapshot.n_items))


@dataclass
class RepeatHistory(Recommender):
    """The customer's own purchases, by orders x recency decay (half-life in days); items
    never bought follow in popularity order, so every list is full-length."""

    half_life_days: float = 60.0

    def fit(self, snapshot, past=None):
        self.snapshot = snapshot
        decay = snapshot.days_since_last.copy()
        decay.data = np.exp2(-decay.data / self.half_life_days)
        self.weights = snapshot.orders.multiply(decay).tocsr()
        popularity = popularity_order(snapshot)
        self.fallback = (1e-3 * popularity / (1 + popularity.max())).astype(np.float32)
        return self

    def score(self, rows):
        return self.weights[rows].toarray() + self.fallback


@dataclass
class ItemKNN(Recommender):
    """Item-item cosine on co-purchase counts (shrunk for rare pairs), ``neighbours`` per
    item: the co-occurrence a warehouse can compute in SQL."""

    neighbours: int = 100
    shrink: float = 10.0

    def fit(self, snapshot, past=None):
        self.snapshot = snapshot
        self.history = _binary(snapshot.orders)
        co = (self.history.T @ self.history).toarray().astype(np.float32)
        counts = np.diag(co).copy()
        np.fill_diagonal(co, 0)
        co /= np.sqrt(np.outer(counts, counts)) + self.shrink
        k = min(self.neighbours, co.shape[0] - 1)
        if k > 0 and k < co.shape[0] - 1:
            weakest = np.argpartition(-co, k, axis=0)[k:]
            np.put_along_axis(co, weakest, 0.0, axis=0)
        self.similarity = co
        return self

    def score(self, rows):
        return np.asarray(self.history[rows] @ self.similarity)


@dataclass
class EASE(Recommender):
    """Steck's EASE: B = I - P diagMat(1 / diag(P)), P = (X'X + l2 I)^-1, zero diagonal;
    scores = X B. Closed form, one dense inverse of items x items."""

    l2: float = 200.0

    def fit(self, snapshot, past=None):
        self.snapshot = snapshot
        self.history = _binary(snapshot.orders)
        gram = (self.history.T @ self.history).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = precision / -np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        return self

    def score(self, rows):
        return np.asarray(self.history[rows] @ self.weights)


@dataclass
class ALS(Recommender):
    """implicit's alternating least squares on confidence = orders (x ``alpha``)."""

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0

    def fit(self, snapshot, past=None):
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.snapshot = snapshot
        # implicit's own threads do the work; a multi-threaded BLAS underneath slows it down
        # (its constructor checks, so it is built inside the limit too)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=0)
            model.fit(sp.csr_matrix(snapshot.orders.astype(np.float32)), show_progress=False)
        self.user_factors = np.asarray(model.user_factors)
        self.item_factors = np.asarray(model.item_factors)
        return self

    def score(self, rows):
        return self.user_factors[rows] @ self.item_factors.T


BASE_LEARNERS = {"popularity": Popularity, "repeat": RepeatHistory, "item_knn": ItemKNN,
                 "ease": EASE, "als": ALS}


@dataclass
class TwoStageRanker(Recommender):
    """Pool each base learner's top ``candidates`` per customer, describe every
    (customer, item) by the base scores and ranks, the customer's own history with the item,
    the item's popularity and the customer's share of the item's category; a LightGBM
    LambdaRank model, trained on an earlier snapshot's outcomes, orders the pool. Items
    outside the pool follow, in popularity order (the ranking stays full-catalogue)."""

    bases: dict = field(default_factory=lambda: {
        "popularity": {}, "repeat": {}, "item_knn": {}, "ease": {}, "als": {}})
    candidates: int = 20  # per base learner; the ranker's predict cost grows with the pool
    max_training_customers: int = 20_000
    params: dict = field(default_factory=dict)
    seed: int = 0

    def _fit_bases(self, snapshot):
        return {name: BASE_LEARNERS[name](**params).fit(snapshot)
                for name, params in self.bases.items()}

    def fit(self, snapshot, past=None):
        import lightgbm as lgb

        if past is None:
            raise ValueError("the two-stage ranker learns from an earlier snapshot's outcomes: "
                             "pass past=(snapshot, labels)")
        past_snapshot, past_labels = past
        bases = self._fit_bases(past_snapshot)
        buyers = np.flatnonzero(np.isin(past_snapshot.customers, list(past_labels)))
        rng = np.random.default_rng(self.seed)
        if buyers.size > self.max_training_customers:
            buyers = np.sort(rng.choice(buyers, self.max_training_customers, replace=False))
        item_index = {item: i for i, item in enumerate(past_snapshot.items)}
        features, targets, groups = [], [], []
        for first in range(0, buyers.size, SCORE_BLOCK):
            rows = buyers[first:first + SCORE_BLOCK]
            user, item, x = self._pool(past_snapshot, bases, rows)
            bought = np.array([u * past_snapshot.n_items + item_index[p]
                               for u, c in enumerate(past_snapshot.customers[rows])
                               for p in past_labels[c] if p in item_index], np.int64)
            y = np.isin(user * past_snapshot.n_items + item, bought)
            # customers with no bought item in their pool teach the ranker nothing
            has_positive = np.bincount(user, y, rows.size) > 0
            keep = has_positive[user]
            features.append(x[keep])
            targets.append(y[keep])
            groups.append(np.bincount(user[keep], minlength=rows.size)[has_positive])
        if not any(t.any() for t in targets):
            raise ValueError(f"no customer at {past_snapshot.as_of} bought a pooled candidate: "
                             "nothing to train the ranker on")
        params = {"objective": "lambdarank", "n_estimators": 100, "learning_rate": 0.1,
                  "num_leaves": 31, "min_child_samples": 50, "lambdarank_truncation_level": 20,
                  "verbose": -1, "random_state": self.seed, "n_jobs": 2, **self.params}
        self.ranker = lgb.LGBMRanker(**params).fit(
            np.vstack(features), np.concatenate(targets), group=np.concatenate(groups))
        self.snapshot = snapshot
        self.base_models = self._fit_bases(snapshot)
        popularity = popularity_order(snapshot)
        self.fallback = (popularity / (1 + popularity.max()) - 2.0).astype(np.float32)
        return self

    def feature_names(self) -> list[str]:
        return ([f"{name}_{kind}" for name in self.bases for kind in ("score", "rank")]
                + ["orders", "days_since_last", "item_buyers_30d", "item_buyers_90d",
                   "history_items", "category_share"])

    def _pool(self, snapshot, bases, rows):
        """(customer offset, item, features) of the pooled candidates of ``rows``; pairs are
        keys ``offset * items + item`` so pooling and look-ups are sorts, not dense masks."""
        n_items = snapshot.n_items
        k = min(self.candidates, n_items)
        offsets = np.arange(rows.size)[:, None] * n_items
        scores, ranked = {}, {}
        for name, model in bases.items():
            score = np.asarray(model.score(rows))
            top = (np.argpartition(-score, k - 1, axis=1)[:, :k] if k < n_items
                   else np.tile(np.arange(n_items), (rows.size, 1)))
            order = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, 1), 1), 1)
            keys = (offsets + order).ravel()
            by_key = np.argsort(keys)
            ranked[name] = keys[by_key], np.tile(np.arange(1, k + 1), rows.size)[by_key]
            scores[name] = score
        pool = np.unique(np.concatenate([keys for keys, _ in ranked.values()]))
        user, item = np.divmod(pool, n_items)
        columns = []
        for name, (keys, rank) in ranked.items():
            at = np.minimum(np.searchsorted(keys, pool), keys.size - 1)
            columns += [scores[name][user, item], np.where(keys[at] == pool, rank[at], k + 1)]
        orders = snapshot.orders[rows]
        days = np.asarray(snapshot.days_since_last[rows][user, item]).ravel()
        n_categories = int(snapshot.item_category.max()) + 1
        one_hot = sp.csr_matrix((np.ones(n_items), (np.arange(n_items), snapshot.item_category)),
                                shape=(n_items, n_categories))
        category_orders = (orders @ one_hot).toarray()
        history = np.maximum(np.asarray(orders.sum(axis=1)).ravel(), 1)
        columns += [np.asarray(orders[user, item]).ravel(), np.where(days > 0, days, 9999),
                    snapshot.item_buyers_30d[item], snapshot.item_buyers_90d[item],
                    np.diff(orders.indptr)[user],
                    category_orders[user, snapshot.item_category[item]] / history[user]]
        return user, item, np.column_stack(columns).astype(np.float32)

    def score(self, rows):
        out = np.broadcast_to(self.fallback, (rows.size, self.snapshot.n_items)).copy()
        user, item, x = self._pool(self.snapshot, self.base_models, rows)
        out[user, item] = 1.0 / (1.0 + np.exp(-self.ranker.predict(x)))
        return out


LEARNERS = {**BASE_LEARNERS, "two_stage": TwoStageRanker}


def build(kind: str, params: dict) -> Recommender:
    if kind not in LEARNERS:
        raise ValueError(f"unknown ranking learner {kind!r}; choose from {sorted(LEARNERS)}")
    return LEARNERS[kind](**params)


def top_k(model: Recommender, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) of each row's ``k`` best items, best first, in blocks."""
    k = min(k, model.snapshot.n_items)
    items, scores = [], []
    for first in range(0, rows.size, SCORE_BLOCK):
        block = model.score(rows[first:first + SCORE_BLOCK])
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else np.tile(
            np.arange(block.shape[1]), (block.shape[0], 1))
        top_scores = np.take_along_axis(block, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        items.append(np.take_along_axis(top, order, 1))
        scores.append(np.take_along_axis(top_scores, order, 1))
    if not items:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.vstack(items), np.vstack(scores)
