"""Who may use the web workspace and the JSON API, and how they prove it.

Passwords are kept as argon2id hashes; personal API tokens and browser sessions as the SHA-256
digest of a long random secret (shown once, never stored). Failed sign-ins are written to the
store, so that every web process throttles an account (and an address) the same way. The command
line is the operator's tool and needs none of this: it acts with the store's rights.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import InvalidInput, NotAllowed, NotFound, VetproError
from ..states.actors import Actor
from ..states.addresses import normalise
from .database import Database, Tx

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
SESSION_HOURS = 8
WINDOW = timedelta(minutes=15)  # failed sign-ins count for this long
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 30
TOKEN_PREFIX = "vetpro_"


class Throttled(VetproError):
    """Too many failed sign-ins for an account or from an address; wait and try again."""

    http_status = 429


class SignInRefused(VetproError):
    """The email or the password is wrong, or the account is disabled (never said which)."""

    http_status = 401


@dataclass(frozen=True)
class Account:
    """A signed-in person: their user row and the actor they are for the service."""

    user_id: int
    email: str
    name: str
    role: str
    organisation_id: int | None

    @property
    def actor(self) -> Actor:
        """The person as the service sees who acts."""
        return Actor(email=self.email, role=self.role, organisation_id=self.organisation_id)


def digest(secret: str) -> str:
    """The stored form of a token or session id."""
    return hashlib.sha256(secret.encode()).hexdigest()


def password_problem(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"the password has {len(password)} characters; use at least {MIN_PASSWORD}"
    if len(password) > MAX_PASSWORD:
        return f"the password is longer than {MAX_PASSWORD} characters"
    if not password.strip():
        return "the password is only spaces"
    return None


def _user(tx: Tx, email: str) -> dict[str, Any]:
    row = tx.row(
        "SELECT u.id, u.email, u.name, u.role, u.organisation_id, c.password_hash, c.disabled "
        'FROM "user" u LEFT JOIN credential c ON c.user_id = u.id WHERE u.email = :email',
        {"email": normalise(email)},
    )
    if row is None:
        raise NotFound(f"no user {email[:80]!r}; register them with 'vetpro user add'")
    return row


def _upsert_credential(tx: Tx, user_id: int, now: datetime, **values: Any) -> None:
    if tx.scalar("SELECT 1 FROM credential WHERE user_id = :id", {"id": user_id}):
        sets = ", ".join(f"{name} = :{name}" for name in values)
        tx.execute(
            f"UPDATE credential SET {sets}, changed_at = :now WHERE user_id = :id",
            {**values, "now": now, "id": user_id},
        )
        return
    row = {"password_hash": None, "disabled": False} | values
    tx.execute(
        "INSERT INTO credential (user_id, password_hash, disabled, changed_at) "
        "VALUES (:id, :password_hash, :disabled, :now)",
        {**row, "id": user_id, "now": now},
    )


def set_password(
    tx: Tx, email: str, password: str, *, now: datetime, hasher: PasswordHasher | None = None
) -> None:
    """Set or reset a user's password (an argon2id hash is kept); the account is enabled again
    and signed out everywhere."""
    if problem := password_problem(password):
        raise InvalidInput(f"password: {problem}")
    user = _user(tx, email)
    hashed = (hasher or PasswordHasher()).hash(password)
    _upsert_credential(tx, user["id"], now, password_hash=hashed, disabled=False)
    tx.execute("DELETE FROM web_session WHERE user_id = :id", {"id": user["id"]})


def disable(tx: Tx, email: str, *, now: datetime) -> dict[str, Any]:
    """Disable a user: no sign-in, and their sessions and API tokens end now."""
    user = _user(tx, email)
    _upsert_credential(tx, user["id"], now, disabled=True)
    sessions = tx.execute("DELETE FROM web_session WHERE user_id = :id", {"id": user["id"]})
    tokens = tx.execute("DELETE FROM api_token WHERE user_id = :id", {"id": user["id"]})
    return {"email": user["email"], "disabled": True, "sessions": sessions, "tokens": tokens}


def new_token(tx: Tx, email: str, *, now: datetime) -> str:
    """A new personal API token for a user (only its digest is kept: show it once)."""
    user = _user(tx, email)
    if user["disabled"]:
        raise NotAllowed(f"{user['email']} is disabled; reset their password to enable them")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tx.execute(
        "INSERT INTO api_token (user_id, digest, created_at) VALUES (:id, :digest, :now)",
        {"id": user["id"], "digest": digest(token), "now": now},
    )
    return token


_ACCOUNT = (
    'SELECT u.id AS user_id, u.email, u.name, u.role, u.organisation_id FROM "user" u '
    "LEFT JOIN credential c ON c.user_id = u.id "
    "WHERE u.id = {user} AND coalesce(c.disabled, :no) = :no"
)


def token_account(tx: Tx, token: str) -> Account | None:
    """The person a personal API token belongs to, or None (unknown, revoked or disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = tx.row(
        _ACCOUNT.format(user="(SELECT user_id FROM api_token WHERE digest = :digest)"),
        {"digest": digest(token), "no": False},
    )
    return Account(**row) if row else None


def session_account(tx: Tx, session_id: str, *, now: datetime) -> Account | None:
    """The person a browser session belongs to, or None (unknown, expired, signed out)."""
    if len(session_id) > 200:
        return None
    row = tx.row(
        _ACCOUNT.format(
            user="(SELECT user_id FROM web_session WHERE digest = :digest AND expires_at > :now)"
        ),
        {"digest": digest(session_id), "now": now, "no": False},
    )
    return Account(**row) if row else None


def end_session(tx: Tx, session_id: str) -> None:
    """Sign a browser session out."""
    tx.execute("DELETE FROM web_session WHERE digest = :digest", {"digest": digest(session_id)})


def _failures(tx: Tx, column: str, value: str, since: datetime) -> tuple[int, datetime | None]:
    row = tx.row(
        f"SELECT count(*) AS n, min(at) AS first FROM sign_in_failure "
        f"WHERE {column} = :value AND at > :since",
        {"value": value, "since": since},
    )
    assert row is not None
    first = row["first"]
    if isinstance(first, str):  # SQLite gives an aggregate's value as it stored it
        first = datetime.fromisoformat(first).replace(tzinfo=since.tzinfo)
    return int(row["n"]), first


def check_throttle(tx: Tx, email: str, address: str, *, now: datetime) -> None:
    """Refuse a sign-in when its account or address failed too often lately."""
    since = now - WINDOW
    for column, value, limit, what in (
        ("email", normalise(email), MAX_FAILURES_PER_ACCOUNT, "this account"),
        ("address", address, MAX_FAILURES_PER_ADDRESS, "your address"),
    ):
        count, first = _failures(tx, column, value, since)
        if count >= limit and first is not None:
            wait = max(1, int((first + WINDOW - now).total_seconds() // 60) + 1)
            raise Throttled(f"too many failed sign-ins for {what}; try again in {wait} minute(s)")


def credentials_of(tx: Tx, email: str) -> dict[str, Any] | None:
    """What a sign-in checks a password against: the account and its hash (None: unknown)."""
    row = tx.row(
        "SELECT u.id AS user_id, u.email, u.name, u.role, u.organisation_id, c.password_hash, "
        'c.disabled FROM "user" u LEFT JOIN credential c ON c.user_id = u.id '
        "WHERE u.email = :email",
        {"email": normalise(email)},
    )
    return row


def password_matches(stored: str | None, password: str, hasher: PasswordHasher) -> bool:
    """Whether a password matches its stored hash (the same work is done when there is none)."""
    try:
        return bool(hasher.verify(stored or _decoy(hasher), password))
    except (VerificationError, InvalidHashError):
        return False


# Hashes of nothing anyone knows: an unknown email costs the same time as a wrong password.
_decoys: dict[tuple[int, int, int], str] = {}


def _decoy(hasher: PasswordHasher) -> str:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _decoys:
        _decoys[key] = hasher.hash(secrets.token_hex(16))
    return _decoys[key]


def record_failure(tx: Tx, email: str, address: str, *, now: datetime) -> None:
    """Remember a failed sign-in (and forget those too old to count)."""
    tx.execute("DELETE FROM sign_in_failure WHERE at < :old", {"old": now - 4 * WINDOW})
    tx.execute(
        "INSERT INTO sign_in_failure (email, address, at) VALUES (:email, :address, :now)",
        {"email": normalise(email)[:320], "address": address[:100], "now": now},
    )


def open_session(tx: Tx, user_id: int, email: str, *, now: datetime) -> str:
    """Start a browser session for a person who signed in; its secret id (kept in the cookie)."""
    tx.execute("DELETE FROM sign_in_failure WHERE email = :email", {"email": normalise(email)})
    tx.execute("DELETE FROM web_session WHERE expires_at < :now", {"now": now})
    session_id = secrets.token_urlsafe(32)
    tx.execute(
        "INSERT INTO web_session (user_id, digest, created_at, expires_at) "
        "VALUES (:id, :digest, :now, :until)",
        {
            "id": user_id,
            "digest": digest(session_id),
            "now": now,
            "until": now + timedelta(hours=SESSION_HOURS),
        },
    )
    return session_id


def sign_in(
    db: Database, email: str, password: str, *, address: str, now: datetime, hasher: PasswordHasher
) -> tuple[Account, str]:
    """Check a password (throttled by account and address); the account and a new session id.

    The hash is checked outside any transaction: it takes a while on purpose.
    """
    with db.transaction(write=False) as tx:
        check_throttle(tx, email, address, now=now)
        found = credentials_of(tx, email)
    stored = found["password_hash"] if found else None
    matches = password_matches(stored, password, hasher)
    with db.transaction() as tx:
        if not matches or found is None or found["disabled"]:
            record_failure(tx, email, address, now=now)
            failed = True
        else:
            session_id = open_session(tx, found["user_id"], found["email"], now=now)
            failed = False
    if failed:
        raise SignInRefused("the email or the password is wrong, or the account is disabled")
    assert found is not None
    keys = ("user_id", "email", "name", "role", "organisation_id")
    return Account(**{k: found[k] for k in keys}), session_id
