"""The media-mix spec (``media_mix.yaml``): a plain, validated dictionary view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SPEC_PATH = Path(__file__).resolve().parent / "media_mix.yaml"


@dataclass(frozen=True)
class MediaMixSpec:
    name: str
    relation: str
    outcome: str
    frequency: str
    min_periods: int
    holdout_periods: int
    model: dict
    sampler: dict
    gate: dict
    plan: dict
    raw: dict

    def with_overrides(self, sampler: dict | None = None, holdout_periods: int | None = None,
                       min_periods: int | None = None) -> MediaMixSpec:
        return MediaMixSpec(**{
            **self.__dict__,
            "sampler": {**self.sampler, **(sampler or {})},
            "holdout_periods": holdout_periods or self.holdout_periods,
            "min_periods": min_periods or self.min_periods,
        })


def load_media_spec(path: Path | None = None) -> MediaMixSpec:
    raw = yaml.safe_load((path or SPEC_PATH).read_text())
    missing = [k for k in ("name", "relation", "outcome", "frequency", "holdout_periods",
                           "model", "sampler", "gate", "plan", "value") if k not in raw]
    if missing:
        raise ValueError(f"{path or SPEC_PATH}: missing keys {', '.join(missing)}")
    return MediaMixSpec(name=raw["name"], relation=raw["relation"], outcome=raw["outcome"],
                        frequency=raw["frequency"], min_periods=int(raw.get("min_periods", 52)),
                        holdout_periods=int(raw["holdout_periods"]), model=raw["model"],
                        sampler=raw["sampler"], gate=raw["gate"], plan=raw["plan"], raw=raw)
