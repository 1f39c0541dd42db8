"""The media-mix model: PyMC-Marketing's MMM, its diagnostics, holdout scores, ROI and the
posterior response curves.

The MMM (``pymc_marketing.mmm.multidimensional.MMM``) is fitted with NUTS on the first
periods; the last ``holdout_periods`` are predicted from the posterior without being
fitted (MAPE of the posterior mean, CRPS of the predictive samples:
``pymc_marketing.metrics.crps``).

**Response curves.** PyMC-Marketing scales each channel by its max-abs and the target by
its max-abs, applies a normalised geometric adstock (a constant spend s has adstock s),
then the logistic saturation ``beta * (1 - exp(-lam x)) / (1 + exp(-lam x))``. So a
channel's steady-state contribution per period at spend s is
``target_scale * beta * logistic(lam * s / channel_scale)``: ``response`` evaluates it for
every posterior draw (the plan optimises its posterior mean; ROI and marginal ROI come
with credible intervals from the same draws).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.settings import get_settings

CI = 0.9  # credible intervals reported: 5% - 95%


def _configure_pytensor() -> None:
    """Cache PyTensor's compiled C under .local/pytensor (the second fit skips compilation);
    must run before pytensor is first imported."""
    if "compiledir" in os.environ.get("PYTENSOR_FLAGS", ""):
        return
    cache = get_settings().local_dir / "pytensor"
    cache.mkdir(parents=True, exist_ok=True)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, f"compiledir={cache}"]))


def _prior(config: dict, dims: tuple[str, ...] | None = None):
    from pymc_extras.prior import Prior

    params = {k: v for k, v in config.items() if k != "dist"}
    return Prior(config["dist"], **params, **({"dims": dims} if dims else {}))


def build_mmm(spec, channels: list[str], controls: list[str]):
    _configure_pytensor()
    from pymc_marketing.mmm import GeometricAdstock, LogisticSaturation
    from pymc_marketing.mmm.multidimensional import MMM
    from pymc_extras.prior import Prior

    priors = spec.model["priors"]
    model_config = {
        "intercept": _prior(priors["intercept"]),
        "gamma_control": _prior(priors["gamma_control"], ("control",)),
        "gamma_fourier": _prior(priors["gamma_fourier"], ("fourier_mode",)),
        "likelihood": Prior("Normal", sigma=_prior(priors["likelihood_sigma"]), dims=("date",)),
    }
    adstock = GeometricAdstock(l_max=int(spec.model["adstock_max_lag"]), priors={
        "alpha": _prior(priors["adstock_alpha"], ("channel",))})
    saturation = LogisticSaturation(priors={
        "lam": _prior(priors["saturation_lam"], ("channel",)),
        "beta": _prior(priors["saturation_beta"], ("channel",))})
    return MMM(date_column="date", channel_columns=channels, target_column="y",
               adstock=adstock, saturation=saturation,
               yearly_seasonality=int(spec.model["yearly_seasonality"]),
               control_columns=controls, model_config=model_config)


@dataclass
class Fit:
    mmm: object
    seconds: float
    train: pd.DataFrame
    holdout: pd.DataFrame
    channels: list[str]
    diagnostics: dict = field(default_factory=dict)
    holdout_metrics: dict = field(default_factory=dict)


LIFT_LIKELIHOOD = "lift_measurements"


def fit(spec, frame, lift: pd.DataFrame | None = None) -> Fit:
    """Fit on all but the last ``holdout_periods`` periods of ``frame`` (a MediaFrame);
    ``lift`` (``ml.mmm.calibration.to_model_rows``: channel, x, delta_x, delta_y, sigma per
    period) calibrates the saturation curves through PyMC-Marketing's lift-test likelihood."""
    table = frame.table
    cut = len(table) - spec.holdout_periods
    train, holdout = table.iloc[:cut].reset_index(drop=True), table.iloc[cut:].reset_index(drop=True)
    mmm = build_mmm(spec, frame.channels, frame.controls)
    columns = ["date", *frame.channels, *frame.controls]
    sampler = spec.sampler
    started = time.perf_counter()
    if lift is not None and len(lift):
        import pymc.dims as pmd

        mmm.build_model(train[columns], train["y"])
        mmm.add_lift_test_measurements(
            lift[["channel", "x", "delta_x", "delta_y", "sigma"]].reset_index(drop=True),
            dist=getattr(pmd, spec.raw.get("calibration", {}).get("likelihood", "Normal")),
            name=LIFT_LIKELIHOOD)
    mmm.fit(train[columns], train["y"], chains=int(sampler["chains"]),
            cores=int(sampler.get("cores", 1)),
            tune=int(sampler["tune"]), draws=int(sampler["draws"]),
            target_accept=float(sampler["target_accept"]),
            random_seed=int(sampler["random_seed"]), progressbar=False)
    seconds = time.perf_counter() - started
    result = Fit(mmm=mmm, seconds=seconds, train=train, holdout=holdout, channels=frame.channels)
    result.diagnostics = diagnostics(result)
    result.holdout_metrics = holdout_metrics(result, columns, int(sampler["random_seed"]))
    return result


def _posterior_predictive(mmm, X: pd.DataFrame, seed: int, last: bool) -> np.ndarray:
    """(sample, period) draws of the outcome in its original scale."""
    predicted = mmm.sample_posterior_predictive(X, extend_idata=False, combined=True,
                                                include_last_observations=last,
                                                random_seed=seed, progressbar=False)
    if hasattr(predicted, "data_vars"):
        predicted = predicted["y"]
    scale = float(np.asarray(mmm.get_scales_as_xarray()["target_scale"].values).reshape(-1)[0])
    return scale * np.asarray(predicted.transpose("sample", ...).values).reshape(
        predicted.sizes["sample"], -1)  # the model's y is max-abs scaled


def diagnostics(result: Fit) -> dict:
    """R-hat, bulk ESS (worst over the media and baseline parameters), divergences and the
    posterior predictive check on the training periods (share of periods in the 90% band)."""
    import arviz as az

    idata = result.mmm.idata
    names = [n for n in ("adstock_alpha", "saturation_lam", "saturation_beta", "gamma_control",
                         "gamma_fourier", "intercept_contribution", "y_sigma")
             if n in idata.posterior]
    summary = az.summary(idata, var_names=names, kind="diagnostics")
    divergences = int(idata.sample_stats["diverging"].sum())
    draws = int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
    samples = _posterior_predictive(result.mmm, result.train[["date", *result.channels,
                                                               "promotion", "trend"]], 0, False)
    low, high = np.quantile(samples, [(1 - CI) / 2, (1 + CI) / 2], axis=0)
    y = result.train["y"].to_numpy()
    rhat = summary["r_hat"].to_numpy(dtype=float)
    return {
        "max_rhat": float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan"),
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "divergences": divergences, "draws": draws,
        "divergence_share": divergences / draws,
        "ppc_coverage": float(np.mean((y >= low) & (y <= high))),
        "chains": int(idata.posterior.sizes["chain"]),
    }


def holdout_metrics(result: Fit, columns: list[str], seed: int) -> dict:
    from pymc_marketing.metrics import crps

    samples = _posterior_predictive(result.mmm, result.holdout[columns], seed, True)
    y = result.holdout["y"].to_numpy(dtype=float)
    mean = samples.mean(axis=0)
    naive = np.full_like(y, result.train["y"].iloc[-len(y):].mean())  # last weeks' mean
    positive = y > 0
    return {
        "periods": int(len(y)), "first": str(result.holdout["date"].iloc[0].date()),
        "last": str(result.holdout["date"].iloc[-1].date()),
        "mape": float(np.mean(np.abs(mean[positive] - y[positive]) / y[positive])),
        "naive_mape": float(np.mean(np.abs(naive[positive] - y[positive]) / y[positive])),
        "crps": float(crps(y, samples)),
        "mean_outcome": float(y.mean()),
        "coverage": float(np.mean((y >= np.quantile(samples, 0.05, axis=0))
                                  & (y <= np.quantile(samples, 0.95, axis=0)))),
    }


# --- posterior response ----------------------------------------------------------------------


def posterior_response_params(result: Fit, draws: int | None = None) -> dict:
    """What the plan needs, JSON-able: per draw and channel lam and beta, the channel and
    target scales, the channels, and each channel's current spend per period."""
    posterior = result.mmm.idata.posterior
    lam = posterior["saturation_lam"].stack(sample=("chain", "draw")).transpose("sample", "channel")
    beta = posterior["saturation_beta"].stack(sample=("chain", "draw")).transpose("sample", "channel")
    order = [str(c) for c in lam["channel"].values]
    index = [order.index(c) for c in result.channels]
    lam, beta = lam.values[:, index], beta.values[:, index]
    if draws and draws < lam.shape[0]:
        keep = np.linspace(0, lam.shape[0] - 1, draws).astype(int)
        lam, beta = lam[keep], beta[keep]
    scales = result.mmm.get_scales_as_xarray()
    channel_scale = scales["channel_scale"].sel(channel=result.channels).values.astype(float)
    target_scale = float(np.asarray(scales["target_scale"].values).reshape(-1)[0])
    return {"channels": result.channels, "lam": lam.tolist(), "beta": beta.tolist(),
            "channel_scale": channel_scale.tolist(), "target_scale": target_scale}


def response(params: dict, spend: np.ndarray) -> np.ndarray:
    """Steady-state outcome per period caused by ``spend`` (channel,) or (n, channel) per
    period: (draw, ..., channel) contributions."""
    lam, beta = np.asarray(params["lam"]), np.asarray(params["beta"])
    x = np.asarray(spend, dtype=float) / np.asarray(params["channel_scale"])
    z = lam.reshape(lam.shape[0], *([1] * (x.ndim - 1)), -1) * x[None, ...]
    logistic = (1 - np.exp(-z)) / (1 + np.exp(-z))
    return params["target_scale"] * beta.reshape(beta.shape[0], *([1] * (x.ndim - 1)), -1) * logistic


def interval(samples: np.ndarray) -> dict:
    low, high = np.quantile(samples, [(1 - CI) / 2, (1 + CI) / 2])
    return {"mean": float(np.mean(samples)), "low": float(low), "high": float(high)}


def roi_table(result: Fit, params: dict) -> dict[str, dict]:
    """Per channel: ROI over the training window (fitted contribution / spend: new customers
    per dollar) and marginal ROI at the current spend (d response / d spend), with 90%
    credible intervals over the posterior draws."""
    posterior = result.mmm.idata.posterior
    contribution = posterior["channel_contribution"].stack(sample=("chain", "draw"))
    contribution = contribution.sum("date").transpose("sample", "channel")
    contribution = contribution.sel(channel=result.channels).values * params["target_scale"]
    spend = result.train[result.channels].sum().to_numpy(dtype=float)
    current = np.asarray(params["current_spend"])
    step = np.maximum(current * 0.01, 1e-6)
    marginal = (response(params, current + step) - response(params, current)) / step
    table = {}
    for c, channel in enumerate(result.channels):
        table[channel] = {"spend": float(spend[c]),
                          "roi": interval(contribution[:, c] / spend[c]),
                          "marginal_roi": interval(marginal[:, c]),
                          "contribution": interval(contribution[:, c])}
    return table


def contribution_over_time(result: Fit, params: dict) -> pd.DataFrame:
    posterior = result.mmm.idata.posterior
    mean = posterior["channel_contribution"].mean(("chain", "draw")).sel(channel=result.channels)
    frame = pd.DataFrame(mean.values * params["target_scale"], columns=result.channels)
    frame.insert(0, "date", result.train["date"].to_numpy())
    return frame
