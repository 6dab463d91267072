"""The deployments `vetpro serve` runs: the daily sweep and the every-minute dispatcher."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Interval

from .jobs import advance_case, dispatch_notifications, nightly

TIMEZONE = "Europe/Brussels"
SWEEP_CRON = "0 6 * * *"  # every morning at 06:00 Brussels time
DISPATCH_SECONDS = 60


def _one_at_a_time() -> ConcurrencyLimitConfig:
    # A second run waits for the first: two sweeps (or two dispatchers) never overlap.
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def deployments() -> list[Any]:
    """The deployments with their schedules, slugs and concurrency limits."""
    return [
        nightly.to_deployment(
            name="daily-sweep",
            schedules=[Cron(SWEEP_CRON, timezone=TIMEZONE, slug="daily-sweep-0600")],
            concurrency_limit=_one_at_a_time(),
            description="Sweep the deadlines, enqueue the staff digest and send the mail.",
            tags=["vetpro"],
        ),
        dispatch_notifications.to_deployment(
            name="dispatch-every-minute",
            schedules=[Interval(DISPATCH_SECONDS, timezone=TIMEZONE, slug="dispatch-every-minute")],
            concurrency_limit=_one_at_a_time(),
            description="Send the mail that is due from the outbox.",
            tags=["vetpro"],
        ),
        advance_case.to_deployment(
            name="advance-case",
            concurrency_limit=None,
            description="Fire one trigger on one case (run it from the UI or the API).",
            tags=["vetpro"],
        ),
    ]


def serve() -> None:
    """Serve the deployments until stopped; their schedules stay active across restarts."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(), pause_on_shutdown=False, print_starting_message=True)
