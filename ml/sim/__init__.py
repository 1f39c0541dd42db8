"""The synthetic world: a retail history with known behaviour, and its ground truth.

``history.py`` writes the raw tables (the same contract as an import) and the
evaluation-only oracle table, which no model reads as a feature.

May import: ``ml.settings``, ``ml.schema``, ``ml.warehouse``. Nothing above.
"""
