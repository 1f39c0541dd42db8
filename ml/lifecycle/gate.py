"""The promotion gate: the rule that decides whether a challenger replaces the champion.

The gate compares challenger and champion on the same out-of-time folds: the champion's
recorded recipe (learner, params, features) is re-fitted on each fold's training window,
exactly like the challenger, so neither model has seen the fold it is judged on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ml import registry
from ml.modeling.metrics import GREATER_IS_BETTER
from ml.modeling.specs import ModelSpec, get_spec


class PromotionError(RuntimeError):
    pass


@dataclass
class Verdict:
    promote: bool
    reason: str
    primary_metric: str
    challenger_value: float
    champion_value: float | None = None
    gain: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "promote" if self.promote else "reject"


def _better_by(metric: str, new: float, old: float) -> float:
    """Signed improvement of ``new`` over ``old`` (positive = better)."""
    return new - old if GREATER_IS_BETTER[metric] else old - new


def _what_the_data_allows(metric: str, values: dict[str, float]) -> str:
    """For a lift floor: the raw lift and the most this base rate allows (a top-decile lift
    of 1.14 is strong when no ranking can exceed 1.22)."""
    share, lift = values.get("lift_share_of_max"), values.get("lift_top_decile")
    if metric != "lift_share_of_max" or not share or lift is None or share != share:
        return ""
    return f" (top-decile lift {lift:.3f} of at most {1 + (lift - 1) / share:.3f} at this base rate)"


def decide(spec: ModelSpec, challenger: dict[str, float], champion: dict[str, float] | None,
           gain_ci: dict | None, champion_comparable: bool = True) -> Verdict:
    """The gate's rule, as a pure function of back-test means (and the bootstrap CI of the
    challenger's gain over the champion)."""
    metric = spec.primary_metric
    verdict = Verdict(False, "", metric, challenger[metric])
    if champion is None and not champion_comparable:
        verdict.reason = ("the champion's recipe cannot be re-evaluated on the current features; "
                          "compare by hand and use `ml promote` if intended")
        return verdict
    if champion is None:
        for floor_metric, floor in spec.promotion.floors.items():
            value = challenger[floor_metric]
            ok = value >= floor if GREATER_IS_BETTER[floor_metric] else value <= floor
            verdict.checks.append(f"{floor_metric} {value:.4f} {'meets' if ok else 'misses'} "
                                  f"floor {floor}{_what_the_data_allows(floor_metric, challenger)}")
            if not ok:
                verdict.reason = f"no champion yet and {verdict.checks[-1]}"
                return verdict
        verdict.promote = True
        verdict.reason = "no champion yet; absolute floors met (" + "; ".join(verdict.checks) + ")"
        return verdict

    verdict.champion_value = champion[metric]
    verdict.gain = _better_by(metric, challenger[metric], champion[metric])
    if gain_ci is not None:
        verdict.ci_low, verdict.ci_high = gain_ci["low"], gain_ci["high"]
    verdict.checks.append(f"{metric} gain {verdict.gain:+.4f} (needs >= "
                          f"{spec.promotion.min_improvement})")
    if verdict.gain < spec.promotion.min_improvement:
        verdict.reason = (f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}: "
                          f"gain {verdict.gain:+.4f} is below the threshold "
                          f"{spec.promotion.min_improvement}")
        return verdict
    if verdict.ci_low is None or not verdict.ci_low > 0:
        verdict.reason = (f"{metric} gain {verdict.gain:+.4f} is not significant: bootstrap 95% CI "
                          f"[{verdict.ci_low}, {verdict.ci_high}] includes zero")
        return verdict
    for guard, tolerance in spec.guardrails.items():
        change = _better_by(guard, challenger[guard], champion[guard])
        verdict.checks.append(f"{guard} {challenger[guard]:.4f} vs {champion[guard]:.4f} "
                              f"(tolerance {tolerance})")
        if change < -tolerance:
            verdict.reason = (f"guardrail {guard} regresses: {challenger[guard]:.4f} vs champion "
                              f"{champion[guard]:.4f}, beyond tolerance {tolerance}")
            return verdict
    verdict.promote = True
    verdict.reason = (f"{metric} improves by {verdict.gain:+.4f} (95% CI {verdict.ci_low:+.4f}.."
                      f"{verdict.ci_high:+.4f}) and no guardrail regresses")
    return verdict


def evaluate_version(model: str, version: str, spec: ModelSpec | None = None) -> dict:
    """Run the gate on a registered version's back-test evidence; tag the version and put
    the verdict in its model card. Returns a JSON-able verdict with an evidence table.
    ``spec``: a spec kept outside the model_specs directory (the recommender's)."""
    from ml.modeling.report import model_card, refresh_report

    spec = spec or get_spec(model)
    mv = registry.client().get_model_version(model, str(version))
    card = registry.run_json(mv.run_id, "backtest_summary.json")
    if card is None:
        raise PromotionError(f"{model} v{version}: its run {mv.run_id} has no back-test evidence")
    summary = card["summary"]
    spec = spec.with_candidate(card["candidate"])  # what the back-test chose (candidate: best)
    champion_info = card.get("champion")
    champion_metrics = summary.get("champion") if champion_info else None
    verdict = decide(spec, {k: v["mean"] for k, v in summary[spec.candidate].items()},
                     {k: v["mean"] for k, v in champion_metrics.items()} if champion_metrics else None,
                     card["gains"].get("champion"),
                     champion_comparable=not champion_info or champion_info["comparable"])
    registry.tag_version(model, version, {"gate_verdict": verdict.decision,
                                          "gate_reason": verdict.reason})
    decided = {"decision": verdict.decision, "reason": verdict.reason}
    registry.describe_version(model, version, model_card(spec, card, decided))
    refresh_report(spec, card, decided, mv.run_id)
    rows = {name: summary[name] for name in (spec.candidate, "champion") if name in summary}
    table = "\n".join(
        [f"| metric | {' | '.join(rows)} |", "|---" * (len(rows) + 1) + "|"]
        + [f"| {m} | " + " | ".join(f"{rows[r][m]['mean']:.4f}" for r in rows) + " |"
           for m in card["metrics"]])
    return {**asdict(verdict), "decision": verdict.decision, "model": model, "version": str(version),
            "run_id": mv.run_id, "champion_version": champion_info["version"] if champion_info else None,
            "evidence_markdown": table}


