"""Prefect flows and deployments: the sweep, the dispatcher, single moves and the nightly run.

Flows orchestrate only: each task wraps one service call and works on a batch, never on one case.
Call `quiet_prefect()` before the first import of prefect, so that it works offline and silently.
"""

from __future__ import annotations

import os
from pathlib import Path

# Prefect reads its own settings from the environment when it is imported; these are defaults
# (anything already set wins).
QUIET = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "ERROR",
    "PREFECT_UI_ENABLED": "false",
    # A busy two-core laptop needs more than Prefect's 20 s to start its temporary server.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def quiet_prefect(home: str | None = None) -> None:
    """Offline, quiet Prefect with its state in a private folder (unless already configured)."""
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    private = home or str(Path.home() / ".vetpro" / "prefect")
    os.environ.setdefault("PREFECT_HOME", private)
    # Prefect creates its home but not the folders above it.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


def server_url() -> str | None:
    """The Prefect server this process reports to, when one is named (PREFECT_API_URL)."""
    return os.environ.get("PREFECT_API_URL") or None
