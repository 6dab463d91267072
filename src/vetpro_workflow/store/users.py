"""The people who act on cases: who they are (an actor for the domain) and registering them."""

from __future__ import annotations

from ..errors import InvalidInput, NotAllowed, NotFound
from ..states.actors import PEOPLE_ROLES, Actor
from ..states.addresses import address_problem, normalise
from .database import Tx

_USER = 'SELECT email, role, organisation_id FROM "user" WHERE email = :email'


def resolve(tx: Tx, email: str) -> Actor:
    """The registered user behind an email address; an unknown one is refused."""
    row = tx.row(_USER, {"email": normalise(email)})
    if row is None:
        raise NotAllowed(
            f"unknown actor {email[:80]!r}: register them first with "
            f"'vetpro user add EMAIL --role staff|coordinator'"
        )
    return Actor(email=row["email"], role=row["role"], organisation_id=row["organisation_id"])


def organisation_id(tx: Tx, name: str) -> int:
    """The id of an organisation by its name."""
    found = tx.scalar("SELECT id FROM organisation WHERE name = :name", {"name": name})
    if found is None:
        raise NotFound(
            f"--org: no organisation is named {name!r}; organisations come from imported "
            f"applications ('vetpro case list' shows them)"
        )
    return int(found)


def add_user(
    tx: Tx, *, email: str, role: str, organisation: str | None = None, name: str = ""
) -> dict[str, object]:
    """Register a staff member, or a coordinator of a named organisation."""
    email = normalise(email)
    if problem := address_problem(email):
        raise InvalidInput(f"EMAIL: {problem}")
    if role not in PEOPLE_ROLES:
        raise InvalidInput(f"--role: {role!r} is not a role; use {' or '.join(PEOPLE_ROLES)}")
    org_id = None
    if role == "coordinator":
        if not organisation:
            raise InvalidInput(
                "--org: a coordinator belongs to an organisation; name it with --org"
            )
        org_id = organisation_id(tx, organisation)
    elif organisation:
        raise InvalidInput("--org: NA staff belong to no organisation; leave --org out")
    if tx.scalar('SELECT 1 FROM "user" WHERE email = :email', {"email": email}):
        raise InvalidInput(f"EMAIL: {email} is already registered")
    user_id = tx.scalar(
        'INSERT INTO "user" (email, name, role, organisation_id) '
        "VALUES (:email, :name, :role, :org) RETURNING id",
        {"email": email, "name": name.strip(), "role": role, "org": org_id},
    )
    return {"id": user_id, "email": email, "role": role, "organisation_id": org_id}
