"""The application workflow: one mobility project, from draft to the accepted final report."""

from __future__ import annotations

from enum import StrEnum

from .dossier import ApplicationFile, Given, MobilityFile
from .eligibility import ORGANISATION_TYPES, PROFESSIONS, brussels_time, stay_days
from .machine import Definition


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
FINAL = (State.CLOSED, State.REJECTED, State.WITHDRAWN)
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
        "note": True,
    },
    {
        "trigger": "approve",
        "source": "submitted",
        "dest": "approved",
        "who": ["staff"],
        "note": True,
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
# System triggers the project fires to follow its participants, and the mobility triggers that
# can make each one due (a cancellation can leave every remaining mobility returned or validated).
FOLLOWS: dict[str, tuple[str, ...]] = {
    "mobilities_departed": ("depart",),
    "mobilities_returned": ("return_home", "cancel"),
    "mobilities_validated": ("validate", "cancel"),
    # Every mobility cancelled before anyone left: nothing to wait for but the final report.
    "mobilities_cancelled": ("cancel",),
}

_GONE = ("abroad", "validation", "dissemination", "completed")
_BACK = ("validation", "dissemination", "completed")
_VALIDATED = ("dissemination", "completed")
_BEFORE = ("drafted", "submitted", "approved", "preparation")
# For the project's follow triggers that wait for every mobility: the mobility states that keep
# the project waiting (so the service need not read a project that one of them still holds).
WAITING_ON: dict[str, tuple[str, ...]] = {
    "mobilities_returned": (*_BEFORE, "abroad"),
    "mobilities_validated": (*_BEFORE, "abroad", "validation"),
    "mobilities_cancelled": (*_BEFORE, *_GONE),
}


def before_deadline(a: ApplicationFile, given: Given) -> str | None:
    """The call's application deadline has not passed."""
    if given.now < a.application_deadline:
        return None
    return f"needs to be sent before the call deadline ({brussels_time(a.application_deadline)})"


def eligible_applicant(a: ApplicationFile, given: Given) -> str | None:
    """The applicant is an organisation of an eligible type."""
    if a.applicant_type in ORGANISATION_TYPES:
        return None
    return f"needs an eligible applicant type (not '{a.applicant_type}')"


def project_described(a: ApplicationFile, given: Given) -> str | None:
    """The project states its objectives and how its results will be disseminated."""
    missing = [
        label
        for label, value in (
            ("project objectives", a.objectives),
            ("a dissemination plan", a.dissemination_plan),
        )
        if not value.strip()
    ]
    return "needs " + " and ".join(missing) if missing else None


def project_period(a: ApplicationFile, given: Given) -> str | None:
    """The project starts no earlier than the call allows and lasts no longer."""
    months = (a.end_date.year - a.start_date.year) * 12 + a.end_date.month - a.start_date.month
    if a.end_date.day >= a.start_date.day:
        months += 1  # a started month counts whole: 2027-06-01 to 2029-05-31 is 24 months
    problems = []
    if a.start_date < a.earliest_start:
        problems.append(
            f"a project start on or after {a.earliest_start} (the call's earliest start)"
        )
    if months > a.max_project_months:
        problems.append(f"a project of at most {a.max_project_months} months (it lasts {months})")
    return "needs " + " and ".join(problems) if problems else None


def partner_abroad(a: ApplicationFile, given: Given) -> str | None:
    """At least one partner is in another participating country."""
    if any(p.country != a.applicant_country for p in a.partners):
        return None
    return (
        f"needs at least one partner in another country than the applicant's "
        f"({a.applicant_country})"
    )


def has_mobility(a: ApplicationFile, given: Given) -> str | None:
    """At least one mobility is planned."""
    return None if a.active_mobilities() else "needs at least one planned mobility"


def mobility_gaps(a: ApplicationFile, m: MobilityFile) -> list[str]:
    """What a mobility still lacks to be complete, in the application's terms."""
    gaps = [
        label
        for label, value in (
            ("objectives", m.objectives),
            ("content", m.content),
            ("training needs", m.training_needs),
            ("professional background", m.professional_background),
        )
        if not value.strip()
    ]
    hosts = {p.name: p for p in a.partners}
    if m.host_name not in hosts:
        gaps.append(f"a host among the partners ('{m.host_name}' is not one)")
    elif hosts[m.host_name].country == a.applicant_country:
        gaps.append(f"a host in another country than the applicant's ({a.applicant_country})")
    days = stay_days(m.start_date, m.end_date)
    if not a.min_days <= days <= a.max_days:
        gaps.append(
            f"a stay of {a.min_days} to {a.max_days} days (it lasts {days}, both ends counted)"
        )
    if m.start_date < a.start_date or m.end_date > a.end_date:
        gaps.append(f"dates inside the project period ({a.start_date} to {a.end_date})")
    if m.profession not in PROFESSIONS:
        gaps.append(f"a VETPRO profession ('{m.profession}' is not one)")
    return gaps


def mobilities_complete(a: ApplicationFile, given: Given) -> str | None:
    """Every planned mobility is complete."""
    problems = [
        f"mobility {m.id} ({m.participant_name}) needs {', '.join(gaps)}"
        for m in a.active_mobilities()
        if (gaps := mobility_gaps(a, m))
    ]
    return "needs every mobility complete: " + "; ".join(problems) if problems else None


def one_departed(a: ApplicationFile, given: Given) -> str | None:
    """At least one mobility has departed."""
    if any(m.state in _GONE for m in a.active_mobilities()):
        return None
    return "needs one mobility abroad"


def all_returned(a: ApplicationFile, given: Given) -> str | None:
    """Every mobility that counts has returned."""
    active = a.active_mobilities()
    if active and not any(m.state in WAITING_ON["mobilities_returned"] for m in active):
        return None
    return "needs every mobility returned"


def all_validated(a: ApplicationFile, given: Given) -> str | None:
    """Every mobility that counts is validated."""
    active = a.active_mobilities()
    if active and not any(m.state in WAITING_ON["mobilities_validated"] for m in active):
        return None
    return "needs every mobility validated"


def all_cancelled(a: ApplicationFile, given: Given) -> str | None:
    """Every mobility of the project was cancelled."""
    if a.mobilities and not any(
        m.state in WAITING_ON["mobilities_cancelled"] for m in a.mobilities
    ):
        return None
    return "needs every mobility cancelled"


def mobilities_finished(a: ApplicationFile, given: Given) -> str | None:
    """Every mobility is completed or cancelled."""
    open_ = [str(m.id) for m in a.mobilities if m.state not in ("completed", "cancelled")]
    if not open_:
        return None
    return f"needs every mobility completed or cancelled (open: {', '.join(open_)})"


def participant_reports_received(a: ApplicationFile, given: Given) -> str | None:
    """Participant reports were received for at least a quarter of completed mobilities."""
    completed = [m for m in a.mobilities if m.state == "completed"]
    reported = [m for m in completed if m.facts.get("participant_report_on")]
    if len(reported) >= REPORT_QUOTA * len(completed):
        return None
    return (
        f"needs participant reports for at least {REPORT_QUOTA:.0%} of completed mobilities "
        f"({len(reported)} of {len(completed)} received)"
    )


DEFINITION = Definition(
    kind="application",
    states=tuple(s.value for s in State),
    initial=INITIAL.value,
    transitions=TRANSITIONS,
    guards={
        "before_deadline": before_deadline,
        "eligible_applicant": eligible_applicant,
        "project_described": project_described,
        "project_period": project_period,
        "partner_abroad": partner_abroad,
        "has_mobility": has_mobility,
        "mobilities_complete": mobilities_complete,
        "one_departed": one_departed,
        "all_returned": all_returned,
        "all_validated": all_validated,
        "all_cancelled": all_cancelled,
        "mobilities_finished": mobilities_finished,
        "participant_reports_received": participant_reports_received,
    },
)
