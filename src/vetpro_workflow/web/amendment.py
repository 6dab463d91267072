"""The amendment form of a drafted application, and the application document it describes.

The form holds the project's fields and one group of fields per drafted mobility, plus an empty
group to add one; a mobility can be removed with its checkbox. The document built from it is
checked by `intake.documents.parse`, exactly as an imported one, and its refusals name the
mobility as the form shows it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidInput
from ..intake.documents import ApplicationDoc, parse
from ..states.snapshots import ApplicationSnapshot
from ..store.database import Tx

PROJECT = ("title", "objectives", "dissemination_plan", "start_date", "end_date")
MOBILITY = (
    "name",
    "email",
    "profession",
    "background",
    "needs",
    "host",
    "start_date",
    "end_date",
    "objectives",
    "content",
    "language",
)


def partners_of(tx: Tx, application_id: int) -> list[dict[str, str]]:
    """An application's partners as a document names them."""
    return tx.rows(
        "SELECT o.name, o.type, o.country, o.contact_name, o.contact_email "
        "FROM application_partner p JOIN organisation o ON o.id = p.organisation_id "
        "WHERE p.application_id = :id ORDER BY o.name",
        {"id": application_id},
    )


def applicant_of(tx: Tx, project: ApplicationSnapshot) -> dict[str, str]:
    """The applicant as the document names it: the organisation and the project's coordinator."""
    row = tx.row(
        "SELECT name, type, country, contact_name FROM organisation WHERE id = :id",
        {"id": project.organisation_id},
    )
    assert row is not None
    return row | {"contact_email": project.coordinator_email}


def form_of(project: ApplicationSnapshot) -> dict[str, str]:
    """The values of the amendment form of a drafted application."""
    values = {name: str(getattr(project, name)) for name in PROJECT}
    drafted = [m for m in project.mobilities if m.state == "drafted"]
    for i, m in enumerate(drafted):
        values |= {
            f"m{i}_name": m.participant_name,
            f"m{i}_email": m.participant_email,
            f"m{i}_profession": m.profession,
            f"m{i}_background": m.professional_background,
            f"m{i}_needs": m.training_needs,
            f"m{i}_host": m.host_name,
            f"m{i}_start_date": m.start_date.isoformat(),
            f"m{i}_end_date": m.end_date.isoformat(),
            f"m{i}_objectives": m.objectives,
            f"m{i}_content": m.content,
            f"m{i}_language": "yes" if m.language_preparation else "",
        }
    values["count"] = str(len(drafted) + 1)  # the last group adds a mobility
    return values


def groups(values: dict[str, str]) -> int:
    """How many mobility groups a form holds (at most 500, as a document)."""
    count = values.get("count", "1")
    return min(int(count), 501) if count.isdigit() and len(count) < 4 else 1


def _text(values: dict[str, str], key: str) -> str:
    return values.get(key, "").strip()


def _mobility(values: dict[str, str], i: int) -> dict[str, Any] | None:
    """A mobility of the form; None when it is removed, or is the empty group."""
    if values.get(f"m{i}_remove") == "yes":
        return None
    fields = {name: _text(values, f"m{i}_{name}") for name in MOBILITY}
    if not any(v for k, v in fields.items() if k not in ("language", "profession", "host")):
        return None
    return {
        "participant": {
            "name": fields["name"],
            "email": fields["email"],
            "profession": fields["profession"],
            "professional_background": fields["background"],
            "training_needs": fields["needs"],
        },
        "host": fields["host"],
        "start_date": fields["start_date"],
        "end_date": fields["end_date"],
        "objectives": fields["objectives"],
        "content": fields["content"],
        "language_preparation": fields["language"] == "yes",
    }


def document_of(
    values: dict[str, str],
    *,
    project: ApplicationSnapshot,
    applicant: dict[str, str],
    partners: list[dict[str, str]],
) -> ApplicationDoc:
    """The application document a posted amendment form describes, checked like an import."""
    mobilities, shown = [], []
    for i in range(groups(values)):
        found = _mobility(values, i)
        if found is not None:
            mobilities.append(found)
            shown.append(i + 1)
    doc = {
        "call": project.call.code,
        "applicant": applicant,
        "partners": partners,
        "project": {name: _text(values, name) for name in PROJECT},
        "mobilities": mobilities,
    }
    try:
        return parse(json.dumps(doc), source="the form")
    except InvalidInput as exc:
        raise InvalidInput(_renamed(str(exc), shown)) from None


def _renamed(message: str, shown: list[int]) -> str:
    """A refusal naming `mobilities[k]` as the form's 'mobility N'."""

    def name(match: re.Match[str]) -> str:
        k = int(match.group(1))
        return f"mobility {shown[k]}" if k < len(shown) else match.group(0)

    return re.sub(r"mobilities\[(\d+)\]", name, message).replace("the form: ", "")
