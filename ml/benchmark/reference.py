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
from ml.modeling.specs import ModelSpec, load_specs
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


def history_customers() -> int:
    """Customers in the benchmarked history (every customer the spine knows, not only a
    model's population): the reference is a multiple of the generator's own size."""
    wh = get_warehouse()
    return int(wh.scalar(f"SELECT count(DISTINCT customer_id) FROM "
                         f"{wh.relation('marts', 'customer_features')}",
                         stage="benchmark history customers"))


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


def _horizons(spec: ModelSpec) -> dict[str, int]:
    """The dbt label-horizon vars: every spec's, this spec's as it is here (an override)."""
    horizons = {s.horizon_var: s.horizon_days for s in load_specs().values() if s.horizon_var}
    if spec.horizon_var:
        horizons[spec.horizon_var] = spec.horizon_days
    return horizons


def _dbt_run(home: Path, spec: ModelSpec, horizons: dict[str, int]) -> None:
    """Build ``spec.training_set`` (and what it reads) in the reference warehouse at
    ``home``."""
    own = replace(get_settings(), local_dir=home, warehouse_path=home / "warehouse.duckdb")
    table = split_name(spec.training_set)[1]
    run = dbt_command(["run", "--quiet", "--select", f"+{table}",
                       *(["--vars", json.dumps(horizons)] if horizons else [])],
                      own, check=False, capture=True)
    if run.returncode != 0:
        raise RuntimeError(f"dbt could not build {spec.training_set} for the reference "
                           f"history:\n{run.stdout[-3000:]}")


def build_reference(spec: ModelSpec, customers: int,
                    seed: int = REFERENCE_SEED) -> ReferenceHistory:
    """The larger history with ``spec.training_set`` built from it, reusing a kept one
    (generated with the same arguments, built by the same dbt code): a first build is made
    in a scratch directory and moved into place, so one that dies halfway is never reused;
    a model's training set missing from a kept history is added to it."""
    from ml.sim.history import generate

    window = synthetic_window()
    if window is None:
        raise ValueError("the data-rich reference needs a synthetic history (eval.oracle_labels)")
    start, end = window
    recipe = {"customers": customers, "seed": seed, "start": str(start), "end": str(end),
              "dbt": _dbt_project_hash()}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    home = get_settings().local_dir / "benchmark" / f"reference-{customers}-{key}"
    history = ReferenceHistory(customers, seed, start, end, home / "warehouse.duckdb")
    record, horizons = home / "build.json", _horizons(spec)
    if record.exists():
        built = json.loads(record.read_text())
        if built["horizons"] != horizons or spec.training_set not in built["relations"]:
            _dbt_run(home, spec, horizons)  # labels built with other horizons are stale now
            relations = built["relations"] if built["horizons"] == horizons else []
            record.write_text(json.dumps({**built, "horizons": horizons,
                                          "relations": [*relations, spec.training_set]},
                                         indent=1))
        return history
    scratch = home.with_name(f"{home.name}.building-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    generate(customers=customers, seed=seed, start=start, end=end,
             warehouse_path=scratch / "warehouse.duckdb")
    _dbt_run(scratch, spec, horizons)
    (scratch / "build.json").write_text(json.dumps(
        {**recipe, "horizons": horizons, "relations": [spec.training_set]}, indent=1))
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
