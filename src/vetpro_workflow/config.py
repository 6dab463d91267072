"""Typed settings read from VETPRO_* environment variables, with defaults that work on a laptop."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidInput


class Settings(BaseSettings):
    """Every setting of the application; one instance is passed to whatever needs it."""

    model_config = SettingsConfigDict(env_prefix="VETPRO_", extra="ignore", env_ignore_empty=True)

    database_url: str = "sqlite:///vetpro.db"
    today: date | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout: float = 30.0
    mail_from: str = "vetpro@national-agency.example"
    staff_email: str = "vetpro-staff@national-agency.example"
    mail_batch_size: int = Field(default=500, ge=1, le=10_000)
    mail_concurrency: int = Field(default=4, ge=1, le=32)
    mail_max_attempts: int = Field(default=8, ge=1, le=100)
    mail_retry_seconds: int = Field(default=60, ge=1)  # first retry; doubles each attempt

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB")
        return value


def get_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, with explicit overrides on top."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = "VETPRO_" + "_".join(str(part) for part in first["loc"]).upper()
        raise InvalidInput(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None
