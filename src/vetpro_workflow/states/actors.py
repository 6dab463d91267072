"""Who acts on cases: NA staff, a coordinator of one organisation, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass

# The roles a person can have, and the one the sweeps and cascades act with.
PEOPLE_ROLES = ("staff", "coordinator")
ROLES = (*PEOPLE_ROLES, "system")
ROLE_NAMES = {"coordinator": "the coordinator", "staff": "NA staff", "system": "the system"}


@dataclass(frozen=True)
class Actor:
    """A person (or the system) acting on cases."""

    email: str
    role: str  # staff | coordinator | system
    organisation_id: int | None = None

    def may_act_for(self, organisation_id: int) -> bool:
        """Whether this actor may act on the cases of an organisation."""
        return self.role != "coordinator" or self.organisation_id == organisation_id


SYSTEM = Actor(email="system", role="system")
