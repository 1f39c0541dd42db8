"""The two UIs in a real browser (Debian's Chromium driven by Playwright): log into Airflow,
see the features DAG's grid and its typed trigger form, the MLflow link in the navigation and
the training task's "MLflow run" button; in MLflow, the champion alias on the registered
model and the HTML back-test report. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, MANUAL_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(3000)]

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
TIMEOUT_MS = 60_000  # pages are slow while the scheduler works on 2 cores


def _chromium() -> str | None:
    return next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """`make setup` installs Debian's Chromium (scripts/install_browser.sh); tests install
    nothing themselves."""
    path = _chromium()
    assert path, ("Chromium is not installed: run `make setup` as root (or `sudo make setup`), "
                  "or install the Debian package 'chromium'")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile (user-data-dir).
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _dismiss_mlflow_dialogs(page) -> None:
    """MLflow greets a new browser profile with a feature-announcement dialog."""
    dialog = page.get_by_role("dialog")
    try:
        dialog.first.wait_for(state="visible", timeout=5_000)
    except Exception:  # noqa: BLE001 - no dialog this time
        return
    page.keyboard.press("Escape")
    expect_hidden = dialog.first
    expect_hidden.wait_for(state="hidden")


def _log_in(page, servers) -> None:
    page.goto(servers.airflow_url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(servers.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*login).*$"))


def test_airflow_dag_grid_and_trigger_form(page, servers, platform_run):
    from playwright.sync_api import expect

    _log_in(page, servers)
    page.get_by_role("button", name="Browse").click()
    registry = page.get_by_role("menuitem", name="MLflow model registry")
    expect(registry).to_have_attribute("href", f"{servers.mlflow_url}/#/models")
    _shot(page, "airflow-browse-menu-mlflow")
    with page.expect_popup() as popup:
        registry.click()
    expect(popup.value.get_by_text("Registered Models").first).to_be_visible()
    popup.value.close()

    page.goto(f"{servers.airflow_url}/dags/features")
    expect(page.get_by_text("features", exact=True).first).to_be_visible()
    expect(page.get_by_text("check_raw_data").first).to_be_visible()
    _shot(page, "airflow-features-grid")

    page.get_by_role("button", name=re.compile("^Trigger")).first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Snapshot cadence").first).to_be_visible()
    expect(dialog.get_by_text("Churn horizon (days)").first).to_be_visible()
    _shot(page, "airflow-features-trigger-form")


def test_training_task_has_mlflow_run_button(page, servers, platform_run):
    from playwright.sync_api import expect

    _log_in(page, servers)
    dag_id, run_id = f"train_{MANUAL_MODEL}", platform_run.manual_run_id
    page.goto(f"{servers.airflow_url}/dags/{dag_id}/runs/{run_id}/tasks/train/details")
    trained = servers.client.xcom(dag_id, run_id, "train")
    link = page.get_by_role("link", name="MLflow run")
    expect(link).to_have_attribute("href", f"{servers.mlflow_url}/#/runs/{trained['run_id']}")
    _shot(page, "airflow-train-task-mlflow-link")
    with page.expect_popup() as popup:
        link.click()
    # MLflow resolves the run's experiment and shows the run page.
    expect(popup.value).to_have_url(re.compile(rf"/#/experiments/\d+/runs/{trained['run_id']}"))
    _dismiss_mlflow_dialogs(popup.value)
    expect(popup.value.get_by_text("Artifacts").first).to_be_visible()
    _shot(popup.value, "mlflow-run-from-airflow-link")


def test_mlflow_registry_champion_and_report(page, servers, platform_run):
    from playwright.sync_api import expect

    page.goto(f"{servers.mlflow_url}/#/models/{MANUAL_MODEL}")
    _dismiss_mlflow_dialogs(page)
    expect(page.get_by_text("champion").first).to_be_visible()
    _shot(page, "mlflow-registered-model-churn")

    champion = servers.champion(MANUAL_MODEL)
    run = servers.mlflow("/api/2.0/mlflow/runs/get", run_id=champion["run_id"]).json()["run"]
    experiment_id = run["info"]["experiment_id"]
    page.goto(f"{servers.mlflow_url}/#/experiments/{experiment_id}/runs/{champion['run_id']}"
              "/artifacts/report/report.html")
    _dismiss_mlflow_dialogs(page)
    expect(page.get_by_text("report.html").first).to_be_visible()
    # MLflow renders an HTML artifact in a frame of its artifact viewer.
    report = page.frame_locator("iframe").first
    expect(report.get_by_role("heading", name=f"{MANUAL_MODEL}: back-test report")).to_be_visible()
    # the model card rendered as HTML (not literal markdown), the gate's verdict on top
    expect(report.get_by_role("heading", name=f"{MANUAL_MODEL}: model card")).to_be_visible()
    expect(report.get_by_text("Verdict: promote", exact=True)).to_be_visible()
    _shot(page, "mlflow-backtest-report")
