"""Typed settings read from VETPRO_* environment variables, with defaults that work on a laptop.

A plain frozen dataclass (pydantic-settings would cost every command a third of a second to
import): each field says how it is read and checked, and a wrong value is one clear error naming
the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from .errors import InvalidInput
from .states.addresses import is_address


def _text(value: str) -> str:
    return value


def _database(value: str) -> str:
    if not value.startswith(("sqlite:///", "postgresql")):
        raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB")
    return value


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _number(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def read(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a {'whole ' if kind is int else ''}number"
            ) from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range; use {low:g} to {high:g}")
        return number

    return read


def _choice(*allowed: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return read


def _address(value: str) -> str:
    if not is_address(value.strip().lower()):
        raise ValueError(f"{value!r} is not a plain email address (local@domain.tld)")
    return value.strip().lower()


def _sender(value: str) -> str:
    address = value.rpartition("<")[2].rstrip(">").strip()
    if not is_address(address) or any(c in value for c in "\r\n"):
        raise ValueError(f"{value!r} is not an address, nor 'Name <local@domain.tld>'")
    return value.strip()


def _setting(default: Any, read: Callable[[str], Any], help: str) -> Any:
    return field(default=default, metadata={"read": read, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting of the application; one instance is passed to whatever needs it."""

    database_url: str = _setting("sqlite:///vetpro.db", _database, "the store")
    today: date | None = _setting(None, _day, "act as if today were this day")  # noqa: RUF009
    smtp_host: str = _setting("127.0.0.1", _text, "the mail server")
    smtp_port: int = _setting(8025, _number(int, 1, 65535), "its port")
    smtp_username: str | None = _setting(None, _text, "SMTP login")
    smtp_password: str | None = _setting(None, _text, "SMTP password")
    smtp_tls: str = _setting("none", _choice("none", "starttls", "tls"), "none, starttls or tls")
    smtp_timeout: float = _setting(
        30.0, _number(float, 1, 600), "seconds before a silent server counts as down"
    )
    mail_from: str = _setting("vetpro@national-agency.example", _sender, "sender of the prompts")
    staff_email: str = _setting(
        "vetpro-staff@national-agency.example", _address, "where staff escalations go"
    )
    mail_batch_size: int = _setting(500, _number(int, 1, 10_000), "rows claimed per batch")
    mail_concurrency: int = _setting(4, _number(int, 1, 32), "SMTP connections per batch")
    mail_max_attempts: int = _setting(
        8, _number(int, 1, 100), "temporary failures before giving up"
    )
    mail_retry_seconds: int = _setting(60, _number(int, 1, 86_400), "first retry delay; doubles")
    web_url: str = _setting("http://127.0.0.1:8000", _text, "where the web workspace is reached")
    secret_key: str | None = _setting(None, _text, "signs the web sessions")
    prefect_home: str | None = _setting(None, _text, "Prefect's private state folder")

    def __repr__(self) -> str:  # never print a password
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("smtp_password", "secret_key"):
            if shown[secret]:
                shown[secret] = "***"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def with_(self, **changes: Any) -> Settings:
        """These settings with some changed."""
        return replace(self, **changes)


def env_name(name: str) -> str:
    """The environment variable of a setting."""
    return f"VETPRO_{name.upper()}"


def get_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings from the environment (or a mapping), with explicit overrides on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name), "").strip()
        if not raw:
            continue
        try:
            values[f.name] = f.metadata["read"](raw)
        except ValueError as exc:
            raise InvalidInput(f"{env_name(f.name)}: {exc}") from None
    return Settings(**(values | overrides))
