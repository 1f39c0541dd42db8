"""The data-rich reference: how far more data alone would take a learner.

The oracle uses latent state no model can observe, so the share of the gap to it that a
model closes mixes what is learnable from the marts with what is not. The reference is the
same learner trained on a much larger history from the same generator (by default 20x the
customers, another seed, the same window), built into a warehouse of its own by the same
dbt project, and evaluated on the same folds of the history being benchmarked. What it
reaches is what these features can learn; the rest of the distance to the oracle needs
information the marts lack.

The reference warehouse is kept under ``<PLATFORM_LOCAL_DIR>/benchmark/`` and reused while
the generator's arguments and the dbt project are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

from ml.dbt import dbt_command
from ml.modeling.specs import ModelSpec
from ml.modeling.training_data import TrainingSet, load_training_set
from ml.schema import ORACLE_TABLE
from ml.settings import EVAL_SCHEMA, get_settings
from ml.warehouse import get_warehouse, split_name

REFERENCE_FACTOR = 20
REFERENCE_SEED = 1_000_003  # a draw of its own: never the benchmarked history's customers
CALENDAR = "marts.snapshot_calendar"


@dataclass(frozen=True)
class ReferenceHistory:
    customers: int
    seed: int
    start: date
    end: date
    warehouse_path: Path


def synthetic_window() -> tuple[date, date] | None:
    """First and last day of the configured history when the generator made it (its
    ground truth is in the warehouse), else None: real data has no generator to ask for
    more of the same."""
    wh = get_warehouse()
    schema, table = split_name(CALENDAR)
    if not wh.table_exists(EVAL_SCHEMA, ORACLE_TABLE) or not wh.table_exists(schema, table):
        return None
    window = wh.query(f"SELECT min(data_start) AS s, max(data_end) AS e FROM "
                      f"{wh.relation(schema, table)}", stage="benchmark data window").to_pylist()[0]
    start, end = window["s"], window["e"]
    return start, end - timedelta(days=1)  # data_end is the day after the last event


def _dbt_project_hash() -> str:
    """Hash of the dbt code a build depends on, so a changed model rebuilds the reference."""
    project = get_settings().dbt_project_dir
    digest = hashlib.sha256()
    for path in sorted([project / "dbt_project.yml", *(project / "models").rglob("*"),
                        *(project / "macros").rglob("*"), *(project / "seeds").rglob("*")]):
        if path.is_file():
            digest.update(str(path.relative_to(project)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_reference(spec: ModelSpec, customers: int,
                    seed: int = REFERENCE_SEED) -> ReferenceHistory:
    """Generate the larger history and build ``spec.training_set`` from it with dbt, unless
    an identical build is already kept. Built in a scratch directory and moved into place,
    so a build that dies halfway is never reused."""
    from ml.sim.history import generate

    window = synthetic_window()
    if window is None:
        raise ValueError("the data-rich reference needs a synthetic history (eval.oracle_labels)")
    start, end = window
    settings = get_settings()
    table = split_name(spec.training_set)[1]
    dbt_vars = {spec.horizon_var: spec.horizon_days} if spec.horizon_var else {}
    recipe = {"customers": customers, "seed": seed, "start": str(start), "end": str(end),
              "relation": spec.training_set, "dbt_vars": dbt_vars, "dbt": _dbt_project_hash()}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    home = settings.local_dir / "benchmark" / f"reference-{customers}-{key}"
    history = ReferenceHistory(customers, seed, start, end, home / "warehouse.duckdb")
    if (home / "build.json").exists():
        return history
    scratch = home.with_name(f"{home.name}.building-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    generate(customers=customers, seed=seed, start=start, end=end,
             warehouse_path=scratch / "warehouse.duckdb")
    own = replace(settings, local_dir=scratch, warehouse_path=scratch / "warehouse.duckdb")
    run = dbt_command(["run", "--quiet", "--select", f"+{table}",
                       *(["--vars", json.dumps(dbt_vars)] if dbt_vars else [])],
                      own, check=False, capture=True)
    if run.returncode != 0:
        raise RuntimeError(f"dbt could not build {spec.training_set} for the reference "
                           f"history:\n{run.stdout[-3000:]}")
    (scratch / "build.json").write_text(json.dumps(recipe, indent=1))
    try:
        scratch.rename(home)
    except OSError:  # another run built it meanwhile: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)
    return history


@contextmanager
def _warehouse_at(path: Path) -> Iterator[None]:
    saved = os.environ.get("WAREHOUSE_PATH")
    os.environ["WAREHOUSE_PATH"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WAREHOUSE_PATH", None)
        else:
            os.environ["WAREHOUSE_PATH"] = saved


def load_reference(spec: ModelSpec, history: ReferenceHistory,
                   unavailable: list[str]) -> TrainingSet:
    """The reference's training set, read like the benchmarked one (same sampling cap)."""
    with _warehouse_at(history.warehouse_path):
        return load_training_set(spec, unavailable=unavailable)
