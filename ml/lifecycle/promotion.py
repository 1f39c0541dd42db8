"""Promote and roll back: move ``@champion`` and record the decision in the ledger.

Promotions of one model are serialised (``promotion_lock``) and every alias write is read
back (MLflow has no compare-and-set).
"""

from __future__ import annotations

import fcntl
import getpass
from collections.abc import Iterator
from contextlib import contextmanager

from ml import registry
from ml.lifecycle.gate import PromotionError
from ml.lifecycle.ledger import append_ledger, ledger_row, read_ledger
from ml.settings import get_settings

@contextmanager
def promotion_lock(model: str) -> Iterator[None]:
    """One promotion of a model at a time on this machine (Airflow adds max_active_runs=1)."""
    path = get_settings().local_dir / "locks" / f"promotion-{model}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def promote(model: str, version: str, actor: str, mode: str, reason: str,
            verdict: dict | None = None, run_id: str | None = None) -> dict:
    """Move @champion to ``version`` and record it. Serialised per model; read back."""
    with promotion_lock(model):
        previous = registry.version_by_alias(model, registry.CHAMPION)
        from_version = str(previous.version) if previous else None
        if from_version == str(version):
            raise PromotionError(f"{model} v{version} is already the champion")
        registry.client().get_model_version(model, str(version))  # exists, or MLflow raises
        registry.set_alias(model, registry.CHAMPION, str(version))
        registry.tag_version(model, version, {"promoted_by": actor, "promotion_mode": mode})
        append_ledger(ledger_row(model, from_version, str(version), "promoted", mode, reason,
                                  actor, verdict, run_id))
    return {"model": model, "from_version": from_version, "to_version": str(version)}


def record_decision(model: str, version: str, decision: str, mode: str, reason: str, actor: str,
                    verdict: dict | None = None, run_id: str | None = None) -> None:
    """A decision that leaves @champion where it is (rejected, dry run, declined by approver)."""
    champion = registry.version_by_alias(model, registry.CHAMPION)
    append_ledger(ledger_row(model, str(champion.version) if champion else None, str(version),
                              decision, mode, reason, actor, verdict, run_id))


def rollback(model: str, actor: str, reason: str = "rollback requested") -> dict:
    """Restore the champion that the current one replaced (from the ledger), in one action."""
    with promotion_lock(model):
        current = registry.version_by_alias(model, registry.CHAMPION)
        if current is None:
            raise PromotionError(f"{model} has no champion to roll back")
        ledger = read_ledger(model)
        promoted = ledger[(ledger.decision == "promoted")
                          & (ledger.to_version == str(current.version))]
        if promoted.empty or promoted.iloc[-1]["from_version"] in (None, "") or \
                (isinstance(promoted.iloc[-1]["from_version"], float)):
            raise PromotionError(f"{model} v{current.version} has no previous champion in the "
                                 "ledger to roll back to")
        target = str(promoted.iloc[-1]["from_version"])
        registry.set_alias(model, registry.CHAMPION, target)
        registry.tag_version(model, current.version, {"rolled_back_by": actor})
        append_ledger(ledger_row(model, str(current.version), target, "rolled_back", "manual",
                                  reason, actor))
    return {"model": model, "from_version": str(current.version), "to_version": target}
