"""Lifecycle: the promotion gate, the promotion ledger, promote and rollback.

Shared by every model family: the gate's rule is a pure function of back-test evidence
that ``ml.modeling`` produced; promotions move ``@champion`` in the registry and append a
row to ``ml.promotion_ledger``.

May import: ``ml.modeling`` and everything below it. Never ``ml.decisions``, ``ml.ops``
or ``ml.cli``.
"""
