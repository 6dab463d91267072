"""What a submitted application must be: on time, eligible, described, and with complete
mobilities. These are the guards of `submit` (and `has_mobility` of `approve`)."""

from __future__ import annotations

from .calendar import brussels_time, stay_days
from .eligibility import ORGANISATION_TYPES, PROFESSIONS
from .snapshots import ApplicationSnapshot, Given, MobilitySnapshot


def before_deadline(a: ApplicationSnapshot, given: Given) -> str | None:
    """Before the call deadline, or, when changes were requested, by the date staff set."""
    if given.now < a.call.deadline:
        return None
    resubmit_by = a.facts.get("resubmit_by")
    if resubmit_by is not None and given.today <= resubmit_by:
        return None
    passed = f"the call deadline ({brussels_time(a.call.deadline)}) has passed"
    if resubmit_by is not None:
        return f"needed resubmitting by {resubmit_by}, the date NA staff set; {passed}"
    return f"needs to be sent before the call deadline; {passed}"


def eligible_applicant(a: ApplicationSnapshot, given: Given) -> str | None:
    """The applicant is an organisation of an eligible type."""
    if a.applicant_type in ORGANISATION_TYPES:
        return None
    return f"needs an eligible applicant type (not '{a.applicant_type}')"


def project_described(a: ApplicationSnapshot, given: Given) -> str | None:
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


def project_months(a: ApplicationSnapshot) -> int:
    """How many months a project lasts; a started month counts whole."""
    months = (a.end_date.year - a.start_date.year) * 12 + a.end_date.month - a.start_date.month
    return months + 1 if a.end_date.day >= a.start_date.day else months


def project_period(a: ApplicationSnapshot, given: Given) -> str | None:
    """The project starts no earlier than the call allows and lasts no longer."""
    problems = []
    if a.start_date < a.call.earliest_start:
        problems.append(
            f"a project start on or after {a.call.earliest_start} (the call's earliest start)"
        )
    if (months := project_months(a)) > a.call.max_project_months:
        problems.append(
            f"a project of at most {a.call.max_project_months} months (it lasts {months})"
        )
    return "needs " + " and ".join(problems) if problems else None


def partner_abroad(a: ApplicationSnapshot, given: Given) -> str | None:
    """At least one partner is in another participating country."""
    if any(p.country != a.applicant_country for p in a.partners):
        return None
    return f"needs a partner in another country than the applicant's ({a.applicant_country})"


def has_mobility(a: ApplicationSnapshot, given: Given) -> str | None:
    """At least one mobility is planned."""
    return None if a.live_mobilities() else "needs at least one planned mobility"


def mobility_gaps(a: ApplicationSnapshot, m: MobilitySnapshot) -> list[str]:
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
    days, call = stay_days(m.start_date, m.end_date), a.call
    if not call.min_days <= days <= call.max_days:
        gaps.append(
            f"a stay of {call.min_days} to {call.max_days} days "
            f"(it lasts {days}, both ends counted)"
        )
    if m.start_date < a.start_date or m.end_date > a.end_date:
        gaps.append(f"dates inside the project period ({a.start_date} to {a.end_date})")
    if m.profession not in PROFESSIONS:
        gaps.append(f"a VETPRO profession ('{m.profession}' is not one)")
    return gaps


def mobilities_complete(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every planned mobility is complete."""
    problems = [
        f"mobility {m.id} ({m.participant_name}) needs {', '.join(gaps)}"
        for m in a.live_mobilities()
        if (gaps := mobility_gaps(a, m))
    ]
    return "needs every mobility complete: " + "; ".join(problems) if problems else None
