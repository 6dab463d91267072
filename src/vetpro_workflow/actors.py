"""Who fires a trigger: NA staff, a coordinator of one organisation, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlmodel import Session

from .errors import NotAllowed
from .models import Organisation, User


@dataclass(frozen=True)
class Actor:
    """A person (or the system) acting on cases."""

    email: str
    role: str  # staff | coordinator | system
    organisation_id: int | None = None


SYSTEM = Actor(email="system", role="system")
_USER_BY_EMAIL = select(User.email, User.role, User.organisation_id).where(
    User.email == bindparam("email")
)


def resolve(session: Session, email: str) -> Actor:
    """The registered user behind an email address; an unknown one is refused."""
    user = session.connection().execute(_USER_BY_EMAIL, {"email": email.strip().lower()}).first()
    if user is None:
        raise NotAllowed(
            f"unknown actor '{email}': register them first with "
            f"'vetpro user add EMAIL --role staff|coordinator'"
        )
    return Actor(email=user.email, role=user.role, organisation_id=user.organisation_id)


def check_scope(session: Session, actor: Actor, *, case_label: str, organisation_id: int) -> None:
    """A coordinator acts only on the cases of their own organisation."""
    if actor.role != "coordinator" or actor.organisation_id == organisation_id:
        return
    own = session.get(Organisation, actor.organisation_id)
    owner = session.get(Organisation, organisation_id)
    raise NotAllowed(
        f"{actor.email} coordinates {own.name if own else 'no organisation'}; "
        f"{case_label} belongs to {owner.name if owner else organisation_id}"
    )
