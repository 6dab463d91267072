"""Registering the people who act on cases: NA staff and coordinators of organisations."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from .addresses import is_address
from .errors import InvalidInput, NotFound
from .models import Organisation, User

ROLES = ("staff", "coordinator")


def add_user(
    session: Session, *, email: str, role: str, organisation: str | None = None, name: str = ""
) -> User:
    """Register a staff member, or a coordinator of a named organisation; commits."""
    email = email.strip().lower()
    if not is_address(email):
        raise InvalidInput(f"EMAIL: {email!r} is not a valid email address")
    if role not in ROLES:
        raise InvalidInput(f"--role: {role!r} is not a role; use staff or coordinator")
    org_id = None
    if role == "coordinator":
        if not organisation:
            raise InvalidInput(
                "--org: a coordinator belongs to an organisation; name it with --org"
            )
        org = session.execute(
            select(Organisation).where(Organisation.name == organisation)
        ).scalar_one_or_none()
        if org is None:
            raise NotFound(
                f"--org: no organisation is named {organisation!r}; organisations come from "
                f"imported applications"
            )
        org_id = org.id
    elif organisation:
        raise InvalidInput("--org: NA staff belong to no organisation; leave --org out")
    if session.execute(select(User).where(User.email == email)).scalar_one_or_none():
        raise InvalidInput(f"EMAIL: {email} is already registered")
    user = User(email=email, role=role, organisation_id=org_id, name=name)
    session.add(user)
    session.commit()
    return user
