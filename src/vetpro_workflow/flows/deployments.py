"""The deployments `vetpro serve` runs: the daily sweep, the every-minute dispatcher, and a
deployment to advance one case by hand from the Prefect UI.

Their entrypoints are module paths (`vetpro_workflow.flows.jobs.nightly`), so a served or worker
run imports the installed package, whatever folder the server was started from.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron, Interval

from .jobs import advance_case, dispatch_notifications, nightly

TIMEZONE = "Europe/Brussels"
SWEEP_CRON = "0 6 * * *"  # every morning at 06:00 Brussels time
DISPATCH_SECONDS = 60


def _one_at_a_time() -> ConcurrencyLimitConfig:
    # A second run waits for the first: two sweeps (or two dispatchers) never overlap.
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def deployments(
    *, sweep_cron: str = SWEEP_CRON, dispatch_seconds: float = DISPATCH_SECONDS
) -> list[Any]:
    """The deployments with their schedules, slugs and concurrency limits."""
    common: dict[str, Any] = {"tags": ["vetpro"], "entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        nightly.to_deployment(
            name="daily-sweep",
            schedules=[Cron(sweep_cron, timezone=TIMEZONE, slug="daily-sweep-0600")],
            concurrency_limit=_one_at_a_time(),
            description="Sweep the deadlines, enqueue the staff digest and send the mail.",
            **common,
        ),
        dispatch_notifications.to_deployment(
            name="dispatch-every-minute",
            schedules=[Interval(dispatch_seconds, timezone=TIMEZONE, slug="dispatch-every-minute")],
            concurrency_limit=_one_at_a_time(),
            description="Send the mail that is due from the outbox.",
            **common,
        ),
        advance_case.to_deployment(
            name="advance-case",
            description="Fire one trigger on one case (run it from the UI or the API).",
            **common,
        ),
    ]


def serve(**schedule: Any) -> None:
    """Serve the deployments until stopped (SIGTERM ends the runs in flight as cancelled); their
    schedules stay active across restarts."""
    from prefect import serve as prefect_serve

    prefect_serve(
        *deployments(**schedule),
        pause_on_shutdown=False,
        print_starting_message=True,
    )
