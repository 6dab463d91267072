"""The application workflow: one mobility project, from draft to the accepted final report."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from . import evaluation, submission
from .facts import CRITERIA
from .machine import Definition
from .snapshots import ApplicationSnapshot, Given


class State(StrEnum):
    DRAFTED = "drafted"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    PREPARATION = "preparation"
    ABROAD = "abroad"
    VALIDATION = "validation"
    DISSEMINATION = "dissemination"
    CLOSED = "closed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


INITIAL = State.DRAFTED
REPORT_QUOTA = 0.25  # participant reports for at least a quarter of completed mobilities (LLP)

TRANSITIONS: list[dict[str, object]] = [
    {
        "trigger": "submit",
        "source": "drafted",
        "dest": "submitted",
        "who": ["coordinator"],
        "conditions": [
            "before_deadline",
            "eligible_applicant",
            "project_described",
            "project_period",
            "partner_abroad",
            "has_mobility",
            "mobilities_complete",
        ],
    },
    {
        "trigger": "request_changes",
        "source": "submitted",
        "dest": "drafted",
        "who": ["staff"],
        "facts": ["resubmit_by?"],
        "note": True,
        "conditions": ["resubmission_possible"],
    },
    {
        "trigger": "evaluate",
        "source": "submitted",
        "dest": "=",
        "who": ["staff"],
        "facts": list(CRITERIA),
        "note": True,
        "conditions": ["scores_on_scale"],
    },
    {
        "trigger": "approve",
        "source": "submitted",
        "dest": "approved",
        "who": ["staff"],
        "note": True,
        "conditions": ["has_mobility", "evaluated_to_pass_mark"],
    },
    {
        "trigger": "reject",
        "source": "submitted",
        "dest": "rejected",
        "who": ["staff"],
        "note": True,
    },
    {
        "trigger": "withdraw",
        "source": ["drafted", "submitted", "approved"],
        "dest": "withdrawn",
        "who": ["coordinator"],
        "note": True,
    },
    {
        "trigger": "start_preparation",
        "source": "approved",
        "dest": "preparation",
        "who": ["coordinator", "staff"],
        "facts": ["grant_agreement_signed_on"],
        "conditions": ["signed_after_approval"],
    },
    {
        "trigger": "mobilities_departed",
        "source": "preparation",
        "dest": "abroad",
        "who": ["system"],
        "conditions": ["one_departed"],
    },
    {
        "trigger": "mobilities_returned",
        "source": "abroad",
        "dest": "validation",
        "who": ["system"],
        "conditions": ["all_returned"],
    },
    {
        "trigger": "mobilities_validated",
        "source": "validation",
        "dest": "dissemination",
        "who": ["system"],
        "conditions": ["all_validated"],
    },
    {
        "trigger": "mobilities_cancelled",
        "source": "preparation",
        "dest": "dissemination",
        "who": ["system"],
        "conditions": ["all_cancelled"],
    },
    {
        "trigger": "close",
        "source": "dissemination",
        "dest": "closed",
        "who": ["staff"],
        "facts": ["final_report_on"],
        "conditions": ["mobilities_finished", "participant_reports_received"],
    },
]

# Application triggers that move its mobilities too, and the mobility trigger each one fires.
CARRIES: dict[str, str] = {
    "submit": "submit",
    "request_changes": "request_changes",
    "approve": "approve",
    "reject": "cancel",
    "withdraw": "cancel",
}

_GONE = ("abroad", "validation", "dissemination", "completed")
_RETURNED = ("validation", "dissemination", "completed")
_VALIDATED = ("dissemination", "completed")


def resubmission_possible(a: ApplicationSnapshot, given: Given) -> str | None:
    """A date set for resubmission is not already past."""
    resubmit_by = given.facts.get("resubmit_by")
    if "resubmit_by" in given.fresh and resubmit_by < given.today:
        return f"needs resubmit_by today or later (not {resubmit_by})"
    return None


def signed_after_approval(a: ApplicationSnapshot, given: Given) -> str | None:
    """The grant agreement is not dated before the application was approved."""
    signed, approved = given.facts.get("grant_agreement_signed_on"), a.facts.get("approved_on")
    if signed is not None and approved is not None and signed < approved:
        return f"needs grant_agreement_signed_on on or after the approval ({approved})"
    return None


def one_departed(a: ApplicationSnapshot, given: Given) -> str | None:
    """At least one mobility has departed."""
    gone = any(m.state in _GONE for m in a.live_mobilities())
    return None if gone else "needs one mobility abroad"


def all_returned(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every mobility that counts has returned."""
    live = a.live_mobilities()
    done = live and all(m.state in _RETURNED for m in live)
    return None if done else "needs every mobility returned"


def all_validated(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every mobility that counts is validated."""
    live = a.live_mobilities()
    done = live and all(m.state in _VALIDATED for m in live)
    return None if done else "needs every mobility validated"


def all_cancelled(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every mobility of the project was cancelled."""
    done = a.mobilities and not a.live_mobilities()
    return None if done else "needs every mobility cancelled"


def mobilities_finished(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every mobility is completed or cancelled."""
    open_ = [str(m.id) for m in a.mobilities if m.state not in ("completed", "cancelled")]
    if not open_:
        return None
    return f"needs every mobility completed or cancelled (open: {', '.join(open_)})"


def participant_reports_received(a: ApplicationSnapshot, given: Given) -> str | None:
    """Participant reports were received for at least a quarter of completed mobilities."""
    completed = [m for m in a.mobilities if m.state == "completed"]
    reported = [m for m in completed if m.facts.get("participant_report_on")]
    if len(reported) >= REPORT_QUOTA * len(completed):
        return None
    return (
        f"needs participant reports for at least {REPORT_QUOTA:.0%} of completed mobilities "
        f"({len(reported)} of {len(completed)} received; record_report records one)"
    )


def _approved(a: ApplicationSnapshot, facts: Mapping[str, Any], given: Given) -> dict[str, Any]:
    return {"approved_on": given.today}


def _changes_requested(
    a: ApplicationSnapshot, facts: Mapping[str, Any], given: Given
) -> dict[str, Any]:
    # The evaluation belonged to the version sent; the changed one is evaluated afresh.
    return {
        "resubmit_by": facts.get("resubmit_by"),
        "scores": None,
        "score": None,
        "evaluated_on": None,
    }


_GUARDS = (
    submission.before_deadline,
    submission.eligible_applicant,
    submission.project_described,
    submission.project_period,
    submission.partner_abroad,
    submission.has_mobility,
    submission.mobilities_complete,
    resubmission_possible,
    evaluation.scores_on_scale,
    evaluation.evaluated_to_pass_mark,
    signed_after_approval,
    one_departed,
    all_returned,
    all_validated,
    all_cancelled,
    mobilities_finished,
    participant_reports_received,
)

DEFINITION = Definition(
    kind="application",
    states=tuple(s.value for s in State),
    initial=INITIAL.value,
    transitions=TRANSITIONS,
    guards={guard.__name__: guard for guard in _GUARDS},
    records={
        "approve": _approved,
        "evaluate": evaluation.evaluated,
        "request_changes": _changes_requested,
    },
    waits=frozenset(
        {
            "has_mobility",
            "evaluated_to_pass_mark",
            "mobilities_finished",
            "participant_reports_received",
        }
    ),
)
