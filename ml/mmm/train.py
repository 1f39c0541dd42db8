"""The media-mix training job: fit, gate, MLflow run (model card, HTML report, posterior),
registered version @challenger, promotion through ``ml.lifecycle`` (ledger, rollback).

The gate (``gate``): a fit is promoted only when its diagnostics pass (max R-hat, min bulk
ESS, divergence share, posterior predictive coverage of the training periods) and its
chronological holdout is good enough (MAPE at most the spec's floor, and at most
``1 + naive_tolerance`` times the naive forecast's, the mean of the last training periods:
at make demo's size a week holds ~13 new customers and both are mostly Poisson noise, so
the check guards against a broken fit rather than demanding a win the noise cannot show). A newer passing fit replaces the
champion: media budgets are planned on the latest data, and the old champion's holdout
lies inside the new fit's training window, so the two are not comparable on one holdout.
The verdict goes to the promotion ledger exactly like the other models'.
"""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml import registry
from ml.mmm import calibration, data, model, value
from ml.mmm.spec import MediaMixSpec, load_media_spec
from ml.modeling.report import pip_requirements
from ml.warehouse import Warehouse, get_warehouse

POSTERIOR_ARTIFACT = "media_mix_posterior.json"
SUMMARY_ARTIFACT = "media_mix_summary.json"
VALUE_METRICS = ("conversion", "first_purchase_value", "expected_repeat_purchases",
                 "repeat_purchase_value")


class MediaResponseModel(mlflow.pyfunc.PythonModel):
    """The logged artifact: the posterior response curves (per draw and channel). ``predict``
    takes one row per allocation (a spend column per channel, per period) and returns the
    expected media-driven outcome per period with its 90% credible interval."""

    def __init__(self, params: dict):
        self.params = params

    def predict(self, context, model_input, params=None):
        spend = model_input[self.params["channels"]].to_numpy(dtype=float)
        total = model.response(self.params, spend).sum(axis=-1)  # (draw, row)
        low, high = np.quantile(total, [0.05, 0.95], axis=0)
        return pd.DataFrame({"expected": total.mean(axis=0), "low": low, "high": high})


def gate(spec: MediaMixSpec, fit: model.Fit, champion_version: str | None) -> dict:
    rules, diag, hold = spec.gate, fit.diagnostics, fit.holdout_metrics
    checks = [
        (diag["max_rhat"] <= rules["max_rhat"] if diag["chains"] > 1 else True,
         f"max R-hat {diag['max_rhat']:.3f} (at most {rules['max_rhat']}"
         + (")" if diag["chains"] > 1 else "; one chain: R-hat not defined, not checked)")),
        (diag["min_ess_bulk"] >= rules["min_ess_bulk"],
         f"min bulk ESS {diag['min_ess_bulk']:.0f} (at least {rules['min_ess_bulk']})"),
        (diag["divergence_share"] <= rules["max_divergence_share"],
         f"divergences {diag['divergences']} of {diag['draws']} draws "
         f"(at most {rules['max_divergence_share']:.0%})"),
        (diag["ppc_coverage"] >= rules["ppc_coverage_min"],
         f"posterior predictive 90% band covers {diag['ppc_coverage']:.0%} of training periods "
         f"(at least {rules['ppc_coverage_min']:.0%})"),
        (hold["mape"] <= rules["max_holdout_mape"],
         f"holdout MAPE {hold['mape']:.3f} over the last {hold['periods']} periods "
         f"(at most {rules['max_holdout_mape']})"),
        (hold["mape"] <= hold["naive_mape"] * (1 + rules.get("naive_tolerance", 0.0))
         or not rules.get("beat_naive", True),
         f"holdout MAPE {hold['mape']:.3f} vs the naive forecast's {hold['naive_mape']:.3f} "
         f"(at most {1 + rules.get('naive_tolerance', 0.0):.2f}x"
         + (")" if rules.get("beat_naive", True) else "; not required by this spec)")),
    ]
    failed = [text for ok, text in checks if not ok]
    promote_ = not failed
    reason = ("diagnostics and holdout pass: " + "; ".join(t for _, t in checks) if promote_
              else "not promoted: " + "; ".join(failed))
    return {"promote": promote_, "decision": "promote" if promote_ else "reject",
            "reason": reason, "primary_metric": "holdout_mape",
            "challenger_value": hold["mape"], "champion_value": None, "gain": None,
            "checks": [{"passed": bool(ok), "check": text} for ok, text in checks],
            "champion_version": champion_version}


def train_media_mix(spec: MediaMixSpec | None = None, warehouse: Warehouse | None = None) -> dict:
    """Fit and log one challenger; returns the summary (with the fit, not JSON-able)."""
    spec = spec or load_media_spec()
    wh = warehouse or get_warehouse()
    mart = data.read_mart(spec, wh)
    frame = data.to_periods(mart, spec)
    lift = calibration.to_model_rows(calibration.read_lift_tests(wh), mart, spec.frequency)
    fit = model.fit(spec, frame, lift if len(lift) else None)
    params = model.posterior_response_params(fit, draws=int(spec.plan["draws"]))
    current = frame.table[frame.channels].iloc[-int(spec.plan["current_weeks"]):].mean()
    params.update({"current_spend": current.tolist(), "frequency": spec.frequency,
                   "current_window": [str(frame.table["date"].iloc[-int(spec.plan["current_weeks"])].date()),
                                      str(frame.last_day.date())]})
    worth = value.new_customer_value(spec.raw["value"], frame.last_day.date(), wh)
    params["value_per_new_customer"] = worth.value_per_new_customer
    roi = with_value_roi(model.roi_table(fit, params), worth.value_per_new_customer)
    calibrated = calibration_summary(spec, frame, lift, roi, params)
    summary = {
        "model": spec.name, "channels": frame.channels, "frequency": spec.frequency,
        "data_window": [str(frame.first_day.date()), str(frame.last_day.date())],
        "periods": {"train": len(fit.train), "holdout": len(fit.holdout)},
        "train_window": [str(fit.train["date"].iloc[0].date()), str(fit.train["date"].iloc[-1].date())],
        "fit_seconds": fit.seconds, "sampler": spec.sampler, "diagnostics": fit.diagnostics,
        "holdout": fit.holdout_metrics, "roi": roi,
        "mean_outcome_per_period": float(fit.train["y"].mean()),
        "calibration": calibrated, "customer_value": worth.to_dict(),
    }
    champion = registry.version_by_alias(spec.name, registry.CHAMPION)
    verdict = gate(spec, fit, str(champion.version) if champion else None)
    summary["verdict"] = verdict
    with tempfile.TemporaryDirectory() as tmp:
        logged = _log(spec, summary, params, fit, Path(tmp))
    return {**logged, "summary": summary, "verdict": verdict, "fit": fit}


def with_value_roi(roi: dict, value_per_customer: float) -> dict:
    """Each channel's ROI and marginal ROI also in value per dollar: new customers per dollar
    x value per new customer (one constant, so the credible interval scales with it)."""
    def scaled(r: dict) -> dict:
        return {k: v * value_per_customer for k, v in r.items()}

    return {c: {**r, "value_roi": scaled(r["roi"]), "value_marginal_roi": scaled(r["marginal_roi"])}
            for c, r in roi.items()}


def calibration_summary(spec: MediaMixSpec, frame, lift: pd.DataFrame, roi: dict,
                        params: dict) -> dict:
    """The lift tests the fit used and, when the spec asks (``calibration.
    compare_uncalibrated``), a second fit without them: ROI per channel both ways."""
    config = spec.raw.get("calibration", {})
    out = {"lift_tests": len(lift), "likelihood": config.get("likelihood", "Normal"),
           "tests": lift.to_dict(orient="records"), "uncalibrated": None,
           "comparison": calibration.calibration_table(None, roi)}
    if len(lift) and config.get("compare_uncalibrated", True):
        base = model.fit(spec, frame)
        base_params = {**model.posterior_response_params(base, draws=int(spec.plan["draws"])),
                       "current_spend": params["current_spend"]}
        base_roi = model.roi_table(base, base_params)
        out["uncalibrated"] = {"roi": base_roi, "holdout": base.holdout_metrics,
                               "diagnostics": base.diagnostics, "fit_seconds": base.seconds}
        out["comparison"] = calibration.calibration_table(base_roi, roi)
    return out


def train_and_gate(mode: str = "auto", spec: MediaMixSpec | None = None,
                   warehouse: Warehouse | None = None) -> dict:
    """Train, gate, then act like the other models: ``auto`` promotes a passing fit,
    ``manual`` leaves it for ``ml promote``, ``dry_run`` only records the decision."""
    spec = spec or load_media_spec()
    return act_on_verdict(spec, train_media_mix(spec, warehouse), mode)


def act_on_verdict(spec: MediaMixSpec, trained: dict, mode: str = "auto") -> dict:
    """The gate's verdict on ``trained`` (re-judged with ``spec.gate``) acted on through
    ml.lifecycle: promotion or a recorded decision, one ledger row either way."""
    from ml.lifecycle.promotion import apply_verdict

    champion = registry.version_by_alias(spec.name, registry.CHAMPION)
    verdict = gate(spec, trained["fit"], str(champion.version) if champion else None)
    registry.tag_version(spec.name, trained["version"], {"gate": verdict["decision"]})
    decision, moved = apply_verdict(spec.name, trained["version"], trained["run_id"], verdict,
                                    mode)
    summary = trained["summary"]
    return {"model": spec.name, "run_id": trained["run_id"], "version": trained["version"],
            "decision": decision, "reason": verdict["reason"], "promotion": moved,
            "fit_seconds": summary["fit_seconds"], "diagnostics": summary["diagnostics"],
            "holdout": summary["holdout"], "lift_tests": summary["calibration"]["lift_tests"],
            "roi": {c: r["roi"] for c, r in summary["roi"].items()},
            "value_per_new_customer": summary["customer_value"]["value_per_new_customer"],
            "value_roi": {c: r["value_roi"] for c, r in summary["roi"].items()}}


# --- report ----------------------------------------------------------------------------------


def model_card(spec: MediaMixSpec, summary: dict) -> str:
    diag, hold, verdict = summary["diagnostics"], summary["holdout"], summary["verdict"]
    rows = "\n".join(
        f"| {c} | {r['spend']:,.0f} | {_ci(r['roi'])} | {_ci(r['marginal_roi'])} "
        f"| {r['contribution']['mean']:,.1f} | {_ci(r['value_roi'], 2)} "
        f"| {_ci(r['value_marginal_roi'], 2)} |"
        for c, r in summary["roi"].items())
    checks = "\n".join(f"- {'pass' if c['passed'] else '**fail**'}: {c['check']}"
                       for c in verdict["checks"])
    return f"""# {spec.name}: model card

**Purpose.** {spec.raw.get('description', '').strip()}

**Outcome.** `{spec.outcome}` summed per {spec.frequency} period: mean
{summary['mean_outcome_per_period']:.1f} per period in the training window (at this size a
period's count carries Poisson noise of about {1 / max(summary['mean_outcome_per_period'], 1e-9) ** 0.5:.0%}).

**Data window.** {summary['data_window'][0]} .. {summary['data_window'][1]};
fitted on {summary['periods']['train']} periods ({summary['train_window'][0]} ..
{summary['train_window'][1]}), the last {summary['periods']['holdout']} held out.

**Model.** PyMC-Marketing MMM: geometric adstock (max lag {spec.model['adstock_max_lag']}),
logistic saturation, {spec.model['yearly_seasonality']} yearly Fourier pairs, controls
{', '.join(spec.model['controls'])}; priors in `ml/mmm/media_mix.yaml`. NUTS
{spec.sampler['chains']} chain(s) x {spec.sampler['draws']} draws ({spec.sampler['tune']} tuning):
{summary['fit_seconds']:.0f} s.

## Diagnostics
max R-hat {diag['max_rhat']:.3f}; min bulk ESS {diag['min_ess_bulk']:.0f}; divergences
{diag['divergences']} of {diag['draws']}; posterior predictive 90% band covers
{diag['ppc_coverage']:.0%} of the training periods.

## Chronological holdout ({hold['first']} .. {hold['last']}, {hold['periods']} periods)
MAPE {hold['mape']:.3f} (naive: mean of the last training periods, {hold['naive_mape']:.3f});
CRPS {hold['crps']:.3f} (mean outcome {hold['mean_outcome']:.1f}); 90% interval covers
{hold['coverage']:.0%}.

## Value of a new customer
{value_section(summary['customer_value'])}

## ROI per channel (90% credible intervals)
Two views: new customers per dollar, and value per dollar (new customers per dollar x
{summary['customer_value']['value_per_new_customer']:,.2f} per new customer; above 1 the
channel pays back its spend within {summary['customer_value']['horizon_days']} days).

| channel | spend (train) | ROI (customers/$) | marginal ROI at current spend | contribution | value ROI ($/$) | marginal value ROI |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

## Calibration with lift tests
{calibration_section(summary.get('calibration'))}

## Promotion gate
**{verdict['decision']}**: {'passed' if verdict['promote'] else 'failed'}
{checks}

## Caveats
- Observational: the effects are identified by the spend's variation over time (flights,
  pauses, shifts); lift tests, where there are any, calibrate the curves (above).
- A new customer's value is one number for the fit (the media effect is on the total of
  new customers, not per channel) and a point estimate: the value ROI intervals carry the
  media model's uncertainty only.
"""


def _ci(r: dict, digits: int = 4) -> str:
    return f"{r['mean']:.{digits}f} ({r['low']:.{digits}f} .. {r['high']:.{digits}f})"


def value_section(worth: dict) -> str:
    """Markdown: the value per new customer and its parts (``ml.mmm.value``)."""
    observed = ("" if worth["observed_value"] is None else
                f" Check on history: the {worth['cohort_signups']:,} signups with the whole horizon "
                f"made {worth['observed_value']:,.2f} of margin each in it.")
    return (f"**{worth['value_per_new_customer']:,.2f}** expected margin per new customer over "
            f"{worth['horizon_days']} days after signup, as of {worth['as_of']} (method: "
            f"{worth['method']}) = margin rate {worth['margin_rate']:.0%} x conversion "
            f"{worth['conversion']:.1%} (first purchase within the horizon, {worth['cohort_signups']:,} "
            f"of {worth['signups']:,} signups) x (first purchase {worth['first_purchase_value']:,.2f} + "
            f"{worth['expected_repeat_purchases']:.2f} expected repeat purchase days x "
            f"{worth['repeat_purchase_value']:,.2f}). {worth['note']}.{observed}")


def calibration_section(cal: dict | None) -> str:
    """Markdown: the lift tests used and each channel's ROI without and with them."""
    if not cal or not cal.get("lift_tests"):
        return ("No lift tests (marts.media_lift_tests is absent or empty): the fit is "
                "uncalibrated. Load readouts with `ml import ... --media-lift-tests FILE`.")
    tests = "\n".join(
        f"| {t['test_id']} | {t['channel']} | {t['days']} | {t['x']:,.1f} | {t['delta_x']:+,.1f} "
        f"| {t['delta_y']:+.2f} | {t['sigma']:.2f} |"
        + (" measured sign contradicts the spend change: entered as 0 |" if t["sign_contradicted"]
           else " |")
        for t in cal["tests"])
    text = (f"{cal['lift_tests']} lift test(s) enter the model through PyMC-Marketing's "
            f"lift-test likelihood ({cal['likelihood']} on the absolute lift), per period:\n\n"
            "| test | channel | days | spend x | delta x | delta y | sigma | note |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n" + tests + "\n\n")
    if not cal.get("uncalibrated"):
        return text + ("ROI per channel calibrated (above); not compared with an uncalibrated "
                       "fit (`calibration.compare_uncalibrated` is off).")
    rows = "\n".join(
        f"| {r['channel']} | {_ci(r['uncalibrated'])} | {_ci(r['calibrated'])} | "
        f"{r['mean_change']:+.4f} | {r['width_ratio']:.2f} |" for r in cal["comparison"])
    return text + ("Effect of calibration on ROI (new customers per dollar, 90% credible "
                   "intervals; width ratio = calibrated / uncalibrated interval width):\n\n"
                   "| channel | uncalibrated | calibrated | mean change | width ratio |\n"
                   "| --- | ---: | ---: | ---: | ---: |\n" + rows + "\n\n"
                   f"Uncalibrated fit: holdout MAPE {cal['uncalibrated']['holdout']['mape']:.3f}, "
                   f"{cal['uncalibrated']['fit_seconds']:.0f} s.")


def _plots(summary: dict, params: dict, fit: model.Fit, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    current = np.asarray(params["current_spend"])
    for c, channel in enumerate(params["channels"]):
        grid = np.linspace(0, 3 * max(current[c], 1e-6), 60)
        spend = np.zeros((grid.size, len(current)))
        spend[:, c] = grid
        curve = model.response(params, spend)[:, :, c]
        line, = ax.plot(grid, curve.mean(axis=0), label=channel)
        ax.fill_between(grid, *np.quantile(curve, [0.05, 0.95], axis=0), alpha=0.15,
                        color=line.get_color())
        ax.axvline(current[c], color=line.get_color(), ls=":", lw=0.8)
    ax.set(xlabel="spend per period", ylabel="new customers per period",
           title="Response curves (posterior mean, 90% band; dotted: current spend)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "response_curves.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    over_time = model.contribution_over_time(fit, params)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.stackplot(over_time["date"], over_time[params["channels"]].T.to_numpy(),
                 labels=params["channels"], alpha=0.8)
    ax.plot(fit.train["date"], fit.train["y"], color="k", lw=0.8, label="new customers")
    ax.set(title="Media contribution over time (posterior mean)", ylabel="per period")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    paths.append(out / "contribution_over_time.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def html_page(title: str, markdown: str, plots: list[Path]) -> str:
    """The markdown (markdown-it, raw HTML escaped) with the plots inline: one file."""
    import base64

    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark", {"html": False}).enable("table").render
    images = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
            "line-height:1.4}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid"
            " #ccc;padding:.25em .6em;text-align:right}th:first-child,td:first-child"
            "{text-align:left}img{max-width:700px}</style></head><body>"
            f"{render(markdown)}<h2>Plots</h2>{images}</body></html>")


def _log(spec: MediaMixSpec, summary: dict, params: dict, fit: model.Fit, tmp: Path) -> dict:
    mlflow = registry.configure()
    markdown = model_card(spec, summary)
    plots = _plots(summary, params, fit, tmp)
    (tmp / "report.html").write_text(html_page(f"{spec.name}: media-mix report", markdown, plots))
    (tmp / "model_card.md").write_text(markdown)
    (tmp / SUMMARY_ARTIFACT).write_text(json.dumps(summary, default=str, indent=1))
    (tmp / POSTERIOR_ARTIFACT).write_text(json.dumps(params))
    diag, hold = summary["diagnostics"], summary["holdout"]
    with mlflow.start_run(experiment_id=registry.experiment_id(spec.name),
                          run_name=f"train-{summary['data_window'][1]}") as run:
        mlflow.set_tags({"model": spec.name, "data_window": "..".join(summary["data_window"]),
                         "gate": summary["verdict"]["decision"]})
        mlflow.log_params({"frequency": spec.frequency, "channels": ",".join(summary["channels"]),
                           "holdout_periods": spec.holdout_periods,
                           **{f"sampler.{k}": v for k, v in spec.sampler.items()},
                           "adstock_max_lag": spec.model["adstock_max_lag"],
                           "yearly_seasonality": spec.model["yearly_seasonality"],
                           "calibrated": bool(summary["calibration"]["lift_tests"]),
                           "value.horizon_days": summary["customer_value"]["horizon_days"],
                           "value.margin_rate": summary["customer_value"]["margin_rate"],
                           "value.method": summary["customer_value"]["method"]})
        mlflow.log_metrics({
            "fit_seconds": summary["fit_seconds"], "max_rhat": diag["max_rhat"],
            "min_ess_bulk": diag["min_ess_bulk"], "divergences": diag["divergences"],
            "ppc_coverage": diag["ppc_coverage"], "holdout_mape": hold["mape"],
            "holdout_crps": hold["crps"], "holdout_naive_mape": hold["naive_mape"],
            "value_per_new_customer": summary["customer_value"]["value_per_new_customer"],
            **{f"roi.{c}.{k}": v for c, r in summary["roi"].items() for k, v in r["roi"].items()},
            **{f"marginal_roi.{c}.{k}": v for c, r in summary["roi"].items()
               for k, v in r["marginal_roi"].items()},
            "lift_tests": summary["calibration"]["lift_tests"],
            **{f"value.{k}": summary["customer_value"][k] for k in VALUE_METRICS},
            **{f"value_roi.{c}.{k}": v for c, r in summary["roi"].items()
               for k, v in r["value_roi"].items()},
            **{f"roi_uncalibrated.{c}.{k}": v
               for c, r in ((summary["calibration"].get("uncalibrated") or {}).get("roi") or {}).items()
               for k, v in r["roi"].items()}})
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="plots")
        for name in ("report.html", "model_card.md"):
            mlflow.log_artifact(str(tmp / name), artifact_path="report")
        for name in (SUMMARY_ARTIFACT, POSTERIOR_ARTIFACT):
            mlflow.log_artifact(str(tmp / name))
        info = mlflow.pyfunc.log_model(name="model", python_model=MediaResponseModel(params),
                                       registered_model_name=spec.name,
                                       pip_requirements=pip_requirements())
    version = str(info.registered_model_version)
    registry.set_alias(spec.name, registry.CHALLENGER, version)
    registry.describe_version(spec.name, version, markdown)
    registry.tag_version(spec.name, version, {
        "gate": summary["verdict"]["decision"], "max_rhat": f"{diag['max_rhat']:.4f}",
        "min_ess_bulk": f"{diag['min_ess_bulk']:.0f}", "divergences": str(diag["divergences"]),
        "holdout_mape": f"{hold['mape']:.4f}", "holdout_crps": f"{hold['crps']:.4f}",
        "value_per_new_customer": f"{summary['customer_value']['value_per_new_customer']:.2f}"})
    return {"run_id": run.info.run_id, "version": version}

