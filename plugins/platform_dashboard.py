"""The platform dashboard as an Airflow 3 plugin app: ``/platform/`` on the API server,
behind Airflow's login, with a "Dashboard" entry in the navigation that shows it
inside the Airflow UI.

A plugin app gets no authentication from Airflow by itself, so the app depends on
``requires_authenticated()``: it accepts the UI's ``_token`` cookie (the page opened from
the navigation stays logged in) or a bearer token, and refuses everyone else. The page is
built by ``ml.ops.dashboard`` on each request; ``ml`` is imported only then, so loading
plugins stays cheap.
"""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

URL_PREFIX = "/platform"

dashboard_app = FastAPI(title="Customer ML platform dashboard",
                        dependencies=[Depends(requires_authenticated())])


@dashboard_app.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    """A plain ``def``: FastAPI runs it in a worker thread, since the warehouse and registry
    reads block."""
    from ml.ops.dashboard import build_dashboard

    return HTMLResponse(build_dashboard(), headers={"Cache-Control": "no-store"})


class PlatformDashboardPlugin(AirflowPlugin):
    name = "platform_dashboard"
    fastapi_apps = [{"app": dashboard_app, "url_prefix": URL_PREFIX,
                     "name": "Customer ML platform dashboard"}]
    external_views = [
        {
            # Same origin as the UI, so it can be framed and the login cookie goes along.
            "name": "Dashboard",  # the sidebar shows about ten characters
            "href": f"{URL_PREFIX}/",
            "url_route": "platform-dashboard",
            "destination": "nav",
        }
    ]
