"""Prefect flows: the daily deadline sweep, the mail dispatcher, single moves and the nightly run.

Flows orchestrate only: each task wraps one service call and works on a batch, never on one case.
Call `quiet_prefect()` before the first import of prefect, so that it works offline and silently.
"""

from __future__ import annotations

import os
from pathlib import Path

_QUIET = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "ERROR",
    "PREFECT_UI_ENABLED": "false",
}


def quiet_prefect(home: Path | None = None) -> None:
    """Offline, quiet Prefect with its state in a private folder (unless already configured)."""
    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)
    private = home or Path(
        os.environ.get("VETPRO_PREFECT_HOME", Path.home() / ".vetpro" / "prefect")
    )
    os.environ.setdefault("PREFECT_HOME", str(private))
    # Prefect creates its home but not the folders above it.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
