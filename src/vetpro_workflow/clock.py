"""The two clocks: the business day that decides what is due and what is recorded, and real time.

`Clock.today` is the business day (the date in Brussels) and `Clock.now` the instant recorded
with a move; both follow `--today` when rehearsing. Claims, leases and send times never read
this clock: they use the machine's real time (`real_now`), so two senders on different business
days still agree on who holds a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from .errors import InvalidInput
from .states.calendar import business_day, out_of_range, start_of


def real_now() -> datetime:
    """The machine's real time, for claims, leases and send times."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Clock:
    """The business day and the instant recorded with what happens on it (aware UTC)."""

    today: date
    now: datetime

    @classmethod
    def real(cls) -> Clock:
        """The machine's clock."""
        return cls.at(real_now())

    @classmethod
    def on(cls, day: date) -> Clock:
        """A rehearsal clock: the given business day, from 00:00 Brussels time."""
        return cls(today=day, now=start_of(day))

    @classmethod
    def at(cls, instant: datetime) -> Clock:
        """A clock stopped at an exact instant; its business day is the date in Brussels."""
        if instant.tzinfo is None:
            raise InvalidInput(f"{instant.isoformat()} has no time zone; add one, e.g. +01:00")
        return cls(today=business_day(instant), now=instant.astimezone(UTC))

    @classmethod
    def parse(cls, text: str | None) -> Clock:
        """The clock a --today value names: a day (YYYY-MM-DD), an instant with its zone, or now."""
        if text is None or not text.strip():
            return cls.real()
        text = text.strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                if problem := out_of_range(day):
                    raise InvalidInput(f"--today: {problem}")
                return cls.on(day)
            instant = datetime.fromisoformat(text)
        except OverflowError:
            raise InvalidInput(f"--today: {text!r} is out of range") from None
        except ValueError:
            raise InvalidInput(
                f"--today: {text!r} is not a date; use YYYY-MM-DD or an instant such as "
                "2027-02-01T12:30+01:00"
            ) from None
        if instant.tzinfo is None:
            raise InvalidInput(f"--today: {text!r} has no time zone; add one, e.g. {text}+01:00")
        try:
            clock = cls.at(instant)
        except OverflowError:
            raise InvalidInput(f"--today: {text!r} is out of range") from None
        if problem := out_of_range(clock.today):
            raise InvalidInput(f"--today: {problem}")
        return clock
