"""Benchmark: the whole platform through the real Airflow scheduler vs in-process.

Generates the demo history once (``ml generate`` defaults: 5,000 customers), copies the raw
warehouse into two fresh state directories and does the same work in each:

- **scheduler**: ``ml.ops.servers.up()`` (Airflow scheduler, dag-processor, triggerer, api-server
  and an MLflow server), ``features`` triggered through the REST API, the asset-triggered
  ``train_*`` DAGs promoting automatically, ``score`` for every champion, and the
  asset-triggered ``allocate``. Times come from Airflow's own run and task records.
- **in-process**: ``ml init`` then ``ml run --json`` (the same DAGs through ``dag.test()``).

Prints the time from the trigger to the champions and to the scores on each path and the
scheduler's overhead. Usage: ``python bench/e2e.py [--customers N] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ml.modeling.specs import spec_paths
from ml.ops.servers import ADMIN_USER, AirflowClient
from ml.settings import REPO_ROOT

ML = str(Path(sys.executable).parent / "ml")
_FOREIGN_PREFIXES = ("AIRFLOW", "MLFLOW_", "DBT_", "WAREHOUSE_", "PLATFORM_", "MODEL_SPECS_DIR")


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    return {**env, "PLATFORM_LOCAL_DIR": str(state), **extra}


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n"
                         f"{result.stderr[-3000:]}")
    return result


def _last_json_object(text: str) -> dict:
    """The JSON summary ``ml run --json`` prints after the DAG runs' own log lines."""
    start = len(text)
    while (start := text.rfind("\n{", 0, start)) != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            continue
    return json.loads(text)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def scheduler_path(state: Path) -> dict[str, float]:
    password = "bench-" + os.urandom(6).hex()
    env = _env(state, AIRFLOW_PORT=os.environ.get("AIRFLOW_PORT", "8080"),
               MLFLOW_PORT=os.environ.get("MLFLOW_PORT", "5000"),
               PLATFORM_ADMIN_PASSWORD=password)
    started = time.monotonic()
    _run([sys.executable, "-c", "from ml.ops.servers import up; up()"], env)
    figures = {"server start-up (incl. db migrate)": time.monotonic() - started}
    try:
        client = AirflowClient(f"http://127.0.0.1:{env['AIRFLOW_PORT']}", ADMIN_USER, password)
        models = [p.stem for p in spec_paths()]
        client.wait_for_dags({"features", "score", "allocate", *[f"train_{m}" for m in models]})
        for model in models:
            client.set_paused(f"train_{model}", False)
        features = client.trigger_in_schedule_slot("features", {}, "bench_features")
        client.set_paused("features", False)
        features = client.wait_for_run("features", features["dag_run_id"], timeout=3600)
        t0 = _ts(features["queued_at"])
        figures["trigger -> features published"] = _ts(features["end_date"]) - t0
        champion_ends = []
        for model in models:
            run_id = client.wait_for_new_run(f"train_{model}", timeout=300)
            client.wait_for_run(f"train_{model}", run_id, timeout=3600)
            finalize = next(t for t in client.task_instances(f"train_{model}", run_id)
                            if t["task_id"] == "finalize")
            champion_ends.append(_ts(finalize["end_date"]))
        figures["trigger -> first champion"] = min(champion_ends) - t0
        figures["trigger -> all champions"] = max(champion_ends) - t0
        # Unpaused once every model has a champion: its cron slot is taken by this run.
        score = client.trigger_in_schedule_slot("score", {"model": "all"}, "bench_score")
        client.set_paused("allocate", False)
        client.set_paused("score", False)
        score = client.wait_for_run("score", score["dag_run_id"], timeout=3600)
        figures["trigger -> scores published"] = _ts(score["end_date"]) - t0
        allocate = client.wait_for_run("allocate", client.wait_for_new_run("allocate"),
                                       timeout=3600)
        figures["trigger -> campaign planned"] = _ts(allocate["end_date"]) - t0
    finally:
        _run([sys.executable, "-c", "from ml.ops.servers import down; down(echo=None)"], env)
    return figures


def in_process_path(state: Path) -> dict[str, float]:
    env = _env(state)
    started = time.monotonic()
    _run([ML, "init"], env)
    figures = {"ml init (manifest + db migrate)": time.monotonic() - started}
    started = time.monotonic()
    summary = _last_json_object(_run([ML, "run", "--json"], env).stdout)
    wall = time.monotonic() - started
    stages = summary["stage_seconds"]

    def total(prefix: str) -> float:
        return sum(v for k, v in stages.items() if k.startswith(prefix))

    figures["features (task time)"] = total("features.")
    figures["train_* (task time)"] = total("train_")
    figures["score (task time)"] = total("score.")
    figures["allocate (task time)"] = total("allocate.")
    figures["ml run wall clock"] = wall
    figures["ml run -> all champions (est.)"] = (
        wall * (total("features.") + total("train_")) / max(sum(stages.values()), 1e-9))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="Keep the state directories.")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cmp-bench-e2e-"))
    try:
        seed_state = root / "seed"
        started = time.monotonic()
        _run([ML, "generate", "--customers", str(args.customers), "--seed", str(args.seed)],
             _env(seed_state))
        print(f"generated {args.customers:,} customers in {time.monotonic() - started:.0f}s")
        states = {name: root / name for name in ("scheduler", "in_process")}
        for state in states.values():
            state.mkdir()
            shutil.copy(seed_state / "warehouse.duckdb", state / "warehouse.duckdb")

        in_process = in_process_path(states["in_process"])
        scheduler = scheduler_path(states["scheduler"])
        print(f"\n{'in-process (ml run)':44}seconds")
        for name, value in in_process.items():
            print(f"  {name:42}{value:8.0f}")
        print(f"\n{'scheduler (ml server up + REST API)':44}seconds")
        for name, value in scheduler.items():
            print(f"  {name:42}{value:8.0f}")
        to_champions = scheduler["trigger -> all champions"]
        to_campaign = scheduler["trigger -> campaign planned"]
        wall = in_process["ml run wall clock"]
        print(f"\noverhead of the scheduler: to all champions {to_champions:.0f}s vs "
              f"~{in_process['ml run -> all champions (est.)']:.0f}s in-process; end to end "
              f"{to_campaign:.0f}s vs {wall:.0f}s ({to_campaign / wall:.2f}x, "
              f"{to_campaign - wall:+.0f}s), plus {scheduler[next(iter(scheduler))]:.0f}s "
              "server start-up")
    finally:
        if args.keep:
            print(f"state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
