"""The clock that guards and deadlines read: the real one, or a day chosen with --today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time


@dataclass(frozen=True)
class Clock:
    """Today's date and the current instant (timezone-aware UTC)."""

    today: date
    now: datetime

    @classmethod
    def real(cls) -> Clock:
        """The machine's clock."""
        now = datetime.now(UTC)
        return cls(today=now.date(), now=now)

    @classmethod
    def on(cls, day: date) -> Clock:
        """A rehearsal clock: the given day, at midnight UTC, so a run is repeatable."""
        return cls(today=day, now=datetime.combine(day, time(0, 0), tzinfo=UTC))

    @classmethod
    def at(cls, instant: datetime) -> Clock:
        """A clock stopped at an exact instant."""
        instant = instant.astimezone(UTC)
        return cls(today=instant.date(), now=instant)

    @classmethod
    def from_today(cls, day: date | None) -> Clock:
        """The rehearsal clock when a day is set, else the real one."""
        return cls.on(day) if day is not None else cls.real()
