"""The demo's story: the example application's life, a second one rejected, and a few mistakes
made on the way (each refused with its rule, changing nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

COORDINATOR = "anna.huber@bbz-steyr.example"
STAFF = "officer@national-agency.example"
SECOND_TITLE = "Company matching for apprentices: learning from the Valencia chamber"
GOOD = {
    "objectives": 8,
    "match": 7,
    "preparation": 7,
    "validation": 6,
    "organisation": 8,
    "dissemination": 7,
}
WEAK = {
    "objectives": 5,
    "match": 4,
    "preparation": 5,
    "validation": 4,
    "organisation": 6,
    "dissemination": 5,
}


@dataclass(frozen=True)
class Step:
    """One thing somebody does on a day: a trigger on a case ("A", "A1"… of the demo)."""

    day: date
    case: str
    trigger: str
    actor: str
    facts: dict[str, object] = field(default_factory=dict)
    note: str | None = None


STEPS: tuple[Step, ...] = (
    Step(date(2027, 1, 15), "A", "submit", COORDINATOR),
    Step(date(2027, 1, 30), "B", "submit", COORDINATOR),
    Step(date(2027, 2, 10), "A", "approve", STAFF, note="Trying to approve before evaluating."),
    Step(date(2027, 2, 10), "A", "evaluate", STAFF, GOOD, "Clear objectives; solid preparation."),
    Step(date(2027, 2, 12), "B", "evaluate", STAFF, WEAK, "Vague objectives; no validation plan."),
    Step(date(2027, 2, 20), "A", "approve", STAFF, note="Ranked first in the call."),
    Step(date(2027, 3, 1), "B", "reject", STAFF, note="Below the call's pass mark (29 of 60)."),
    Step(
        date(2027, 3, 1),
        "A1",
        "start_preparation",
        COORDINATOR,
        {"agreement_signed_on": "2027-03-01"},
    ),
    Step(
        date(2027, 3, 10),
        "A",
        "start_preparation",
        COORDINATOR,
        {"grant_agreement_signed_on": "2027-03-10"},
    ),
    Step(
        date(2027, 5, 10),
        "A1",
        "start_preparation",
        COORDINATOR,
        {"agreement_signed_on": "2027-05-10"},
    ),
    Step(
        date(2027, 5, 10),
        "A2",
        "start_preparation",
        COORDINATOR,
        {"agreement_signed_on": "2027-05-10"},
    ),
    Step(date(2027, 9, 6), "A1", "depart", COORDINATOR, {"departed_on": "2027-09-06"}),
    Step(
        date(2027, 9, 6),
        "A1",
        "depart",
        COORDINATOR,
        {"departed_on": "2027-09-06", "preparation_done": "true"},
    ),
    Step(
        date(2027, 9, 30),
        "A1",
        "record_report",
        COORDINATOR,
        {"participant_report_on": "2027-09-30"},
    ),
    Step(date(2027, 10, 4), "A2", "depart", COORDINATOR, {"departed_on": "2027-10-04"}),
    Step(
        date(2027, 10, 20),
        "A2",
        "record_report",
        COORDINATOR,
        {"participant_report_on": "2027-10-20"},
    ),
    Step(date(2027, 11, 2), "A1", "validate", COORDINATOR, {"europass_ref": "EMD-2027-0001"}),
    Step(date(2027, 11, 2), "A2", "validate", COORDINATOR, {"europass_ref": "EMD-2027-0002"}),
    Step(
        date(2027, 12, 1),
        "A1",
        "complete",
        COORDINATOR,
        {"dissemination": "Workshop for 12 welding trainers"},
    ),
    Step(
        date(2027, 12, 1),
        "A2",
        "complete",
        COORDINATOR,
        {"dissemination": "Talk at the school's staff day"},
    ),
    Step(date(2029, 7, 1), "A", "close", STAFF),
    Step(date(2029, 7, 1), "A", "close", STAFF, {"final_report_on": "2029-06-20"}),
)

# The mornings the sweep runs in the demo: it returns each mobility on its planned end date and
# sends the reminders that fell due since the last sweep.
SWEEP_DAYS = (
    date(2027, 1, 2),
    date(2027, 1, 25),
    date(2027, 8, 23),
    date(2027, 9, 24),
    date(2027, 10, 1),
    date(2027, 10, 15),
    date(2027, 10, 22),
    date(2029, 5, 31),
)
