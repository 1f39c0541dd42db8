"""The platform dashboard on the real Airflow API server: refused without a login, and in a
real browser (Debian's Chromium, every request outside 127.0.0.1 blocked, so the charts
must render offline) reached from the Airflow navigation with every section filled.

Past scores are judged once their labels mature, so before the page is opened the churn
champion backfills a matured snapshot through the score DAG (Param ``as_of``), whose
``monitor`` task stores its realised AUC."""

from __future__ import annotations

import re

import duckdb
import httpx
import pytest

from tests.e2e.conftest import MANUAL_MODEL
from tests.e2e.test_browser import _log_in, _shot, browser, chromium_path, page  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(3000)]

CORE_SECTIONS = ("models", "drift", "realised", "freshness", "campaign")
LATER_SECTIONS = {"experiments": "experiment_readouts", "recommendations": "recommendations",
                  "media": "media_plans"}


def _warehouse(servers, sql: str):
    with duckdb.connect(str(servers.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def backfilled(servers, platform_run) -> str:
    """The churn champion scores the latest snapshot whose churn labels have matured; the
    scores Asset then re-plans the campaign, awaited too so nothing writes during the test."""
    ((as_of,),) = _warehouse(servers, "SELECT max(as_of_date) FROM marts.snapshot_calendar "
                                      "WHERE churn_label_matured")
    client = servers.client
    planned = {r["dag_run_id"] for r in client.runs("allocate")}
    run = client.trigger("score", {"model": MANUAL_MODEL, "as_of": as_of.isoformat(),
                                   "shards": 1}, run_id="e2e_dashboard_backfill")
    client.wait_for_run("score", run["dag_run_id"], timeout=600)
    allocate = client.wait_for_new_run("allocate", planned, timeout=120)
    client.wait_for_run("allocate", allocate, timeout=600)
    # the session's record of every run it started (test_servers_e2e checks nothing else ran)
    platform_run.runs.setdefault("score", []).append(run["dag_run_id"])
    platform_run.runs.setdefault("allocate", []).append(allocate)
    return as_of.isoformat()


def test_dashboard_refuses_anonymous_and_forged_requests(servers):
    url = f"{servers.airflow_url}/platform/"
    anonymous = httpx.get(url, timeout=30, follow_redirects=False)
    assert anonymous.status_code == 401, anonymous.text[:300]
    assert "Platform" not in anonymous.text and "plotly" not in anonymous.text
    forged = httpx.get(url, timeout=30, cookies={"_token": "not-a-jwt"})
    assert forged.status_code == 403, forged.text[:300]
    signed_in = httpx.get(url, timeout=120,
                          headers={"Authorization": f"Bearer {servers.client.token()}"})
    assert signed_in.status_code == 200
    assert signed_in.text.startswith("<!DOCTYPE html>")


def test_dashboard_in_the_airflow_ui_has_every_section(page, servers, backfilled):  # noqa: F811
    from playwright.sync_api import expect

    outside = []

    def only_local(route):
        if re.match(r"^https?://127\.0\.0\.1[:/]", route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_local)
    _log_in(page, servers)
    entry = page.locator('[href$="plugin/platform-dashboard"]').first
    expect(entry).to_be_attached()  # the "Dashboard" entry in the navigation
    page.goto(f"{servers.airflow_url}/plugin/platform-dashboard")
    framed = page.frame_locator("iframe").first
    expect(framed.locator("h1")).to_have_text("Customer ML platform")
    _shot(page, "airflow-platform-dashboard-in-ui")

    outside.clear()  # from here on, only the dashboard page's own requests
    page.goto(f"{servers.airflow_url}/platform/")  # the page itself, logged in by cookie
    for key in CORE_SECTIONS:
        expect(page.locator(f'section#{key}[data-has-data="true"]')).to_be_visible()
    for chart in ("chart-models", "chart-drift", "chart-realised", "chart-campaign"):
        expect(page.locator(f"#{chart} .main-svg").first).to_be_visible()  # plotly drew it
    models = page.locator("section#models")
    for model in ("churn", "purchase_propensity", "revenue_per_click"):
        expect(models.get_by_text(model, exact=True).first).to_be_visible()
    realised = page.locator("section#realised")
    expect(realised.get_by_text(backfilled).first).to_be_visible()
    expect(realised.get_by_text("roc_auc").first).to_be_visible()
    expect(page.locator("section#freshness").get_by_text("data window")).to_be_visible()
    campaign = page.locator("section#campaign .cards")
    for label in ("spend", "expected return", "treated", "control"):
        expect(campaign.get_by_text(label, exact=True)).to_be_visible()
    for key, table in LATER_SECTIONS.items():
        exists = _warehouse(servers, "SELECT count(*) FROM information_schema.tables WHERE "
                                     f"table_schema = 'ml' AND table_name = '{table}'")[0][0]
        rows = _warehouse(servers, f"SELECT count(*) FROM ml.{table}")[0][0] if exists else 0
        expect(page.locator(f'section#{key}[data-has-data="{str(bool(rows)).lower()}"]')
               ).to_be_visible()
    _shot(page, "platform-dashboard")
    assert outside == []  # the page fetched nothing from beyond the machine
