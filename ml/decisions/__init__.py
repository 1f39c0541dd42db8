"""Decisions: what the champions drive, written back to the warehouse.

Batch scoring (``scoring.py``), the budgeted retention allocation (``allocation.py``) and
the campaign plan it writes (``campaign.py``), and the top offers each targeted customer
carries from the served recommendations (``offers.py``).

May import: ``ml.recommend``, ``ml.lifecycle``, ``ml.modeling`` and everything below. Never ``ml.ops`` or
``ml.cli``.
"""
