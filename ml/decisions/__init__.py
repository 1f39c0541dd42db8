"""Decisions: what the champions drive, written back to the warehouse.

Batch scoring (``scoring.py``), the budgeted retention allocation (``allocation.py``) and
the campaign plan it writes (``campaign.py``).

May import: ``ml.lifecycle``, ``ml.modeling`` and everything below. Never ``ml.ops`` or
``ml.cli``.
"""
