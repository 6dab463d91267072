"""The commands on cases: case list/show/advance/history/rederive, and the diagrams."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InvalidInput
from ..states.facts import CRITERIA, FACT_TYPES, SHAPES
from .app import app, case, emit, env, json_option, today_option

KINDS = ("application", "mobility")


@case.command("list")
@click.option("--kind", type=click.Choice(KINDS), help="Only applications or only mobilities.")
@click.option("--state", help="Only cases in this state (e.g. submitted, abroad).")
@click.option("--call", "call_code", metavar="CODE", help="Only cases of this call.")
@click.option("--country", metavar="CC", help="Only cases of applicants in this country.")
@click.option("--overdue", is_flag=True, help="Only cases whose next step is overdue.")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Cases per page.",
)
@click.option("--after", type=click.IntRange(0, 2**63 - 1), help="The page after this case id.")
@today_option
@json_option
def case_list(
    kind: str | None,
    state: str | None,
    call_code: str | None,
    country: str | None,
    overdue: bool,
    limit: int,
    after: int | None,
    today: str | None,
    as_json: bool,
) -> None:
    """List cases, oldest first, one page at a time (the next with --after the last id shown).

    Example: vetpro case list --kind application --state submitted
    """
    from ..store.listing import Filters, cases_page

    run = env()
    filters = Filters(kind, state, call_code, country, overdue)
    with run.transaction(write=False) as tx:
        page = cases_page(tx, filters, None, today=run.clock.today, after=after, size=limit)
    emit(as_json, page.rows, lambda rows: _cases_table(rows, page.after))


def _cases_table(cases: list[dict[str, Any]], more_after: int | None = None) -> str:
    if not cases:
        return "no cases"
    lines = [f"{'id':>6}  {'kind':<11}  {'state':<13}  title"]
    lines += [f"{c['id']:>6}  {c['kind']:<11}  {c['state']:<13}  {c['title']}" for c in cases]
    if more_after is not None:
        lines.append(f"more: vetpro case list --after {more_after} (with the same filters)")
    return "\n".join(lines)


@case.command("show")
@click.argument("case_id", metavar="ID", type=int)
@click.option("--actor", metavar="EMAIL", help="List what this person may do now.")
@json_option
def case_show(case_id: int, actor: str | None, as_json: bool) -> None:
    """Show a case: its state, what may be done now (and by whom), and the next required step.

    Example: vetpro case show 2 --actor anna.huber@bbz-steyr.example
    """
    from ..store.users import resolve
    from ..store.views import show

    with env().transaction(write=False) as tx:
        who = resolve(tx, actor) if actor else None
        data = show(tx, case_id, actor=who)
    emit(as_json, data, _case_text)


def _action(a: dict[str, Any]) -> str:
    asks = [
        f"{f['name']}={f['shape']}" + ("" if f["required"] else " (optional)") for f in a["facts"]
    ]
    if a["note"]:
        asks.append("--note")
    return (
        f"{a['trigger']}" + (f" [{', '.join(asks)}]" if asks else "") + f" ({'/'.join(a['who'])})"
    )


def _case_text(c: dict[str, Any]) -> str:
    lines = [
        f"{c['kind'].capitalize()} {c['id']}: {c['title']}",
        f"  state      {c['state']} (version {c['version']})",
        f"  next step  {c['next_step']}",
    ]
    actions = c["allowed"]
    lines.append("  allowed    " + ("; ".join(_action(a) for a in actions) if actions else "-"))
    lines += [f"  waiting    {w['trigger']} {w['reason']}" for w in c.get("waiting", [])]
    if c["facts"]:
        lines.append("  facts      " + shown_facts(c["facts"]))
    if c.get("stay_note"):
        lines.append(f"  NOTE       actual stay outside the call's limits: {c['stay_note']}")
    for mail in c.get("undeliverable_mail", []):
        lines.append(
            f"  MAIL NOT DELIVERED  outbox row {mail['id']} ({mail['kind']}) to {mail['to']}: "
            f"{mail['last_error']}; fix it, then 'vetpro outbox retry {mail['id']} --to ADDRESS'"
        )
    if c["kind"] == "application":
        lines += [
            f"  mobility {m['id']:>4}  {m['state']:<13} {m['participant']} at {m['host']} "
            f"({m['start_date']} to {m['end_date']})"
            for m in c["mobilities"]
        ]
    else:
        lines.append(f"  application {c['application_id']} ({c['application_state']})")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_shown(v)}" for k, v in value.items()) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shown_facts(facts: dict[str, Any]) -> str:
    """Recorded facts on one line, as people read them."""
    return ", ".join(f"{k}={_shown(v)}" for k, v in facts.items())


def facts_of(pairs: tuple[str, ...]) -> dict[str, str]:
    """The facts given with --set KEY=VALUE."""
    facts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"--set: {pair!r} is not KEY=VALUE (e.g. --set departed_on=2027-09-06)"
            )
        facts[key.strip()] = value.strip()
    return facts


def _facts_help() -> str:
    kinds = {name: kind for facts in FACT_TYPES.values() for name, kind in facts.items()}
    listed = ", ".join(f"{n} ({SHAPES[k]})" for n, k in kinds.items() if n not in CRITERIA)
    return f"A fact, KEY=VALUE: {listed}; evaluate's scores {', '.join(CRITERIA)}."


@case.command("advance")
@click.argument("case_id", metavar="ID", type=int)
@click.argument("trigger", metavar="TRIGGER")
@click.option("--actor", required=True, metavar="EMAIL", help="Who fires the trigger.")
@click.option("--note", help="Free text kept in the history (some triggers require one).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_facts_help())
@click.option(
    "--if-version", type=int, help="Refuse (exit 3) unless the case is still at this version."
)
@today_option
@json_option
def case_advance(
    case_id: int,
    trigger: str,
    actor: str,
    note: str | None,
    sets: tuple[str, ...],
    if_version: int | None,
    today: str | None,
    as_json: bool,
) -> None:
    """Fire a trigger on a case (exit 0 moved, 1 refused, 3 conflict).

    \b
    Triggers: application submit, request_changes, evaluate, approve, reject, withdraw,
    start_preparation, close; mobility start_preparation, record_preparation, depart,
    return_home, interrupt, record_report, validate, complete, cancel.
    Example: vetpro case advance 2 depart --actor anna.huber@bbz-steyr.example \\
             --set departed_on=2027-09-06 --set preparation_done=true
    """
    from ..cases import advance_in
    from ..store.users import resolve
    from ..store.views import show

    run = env()
    facts = facts_of(sets)
    with run.transaction(write=True) as tx:
        who = resolve(tx, actor)
        advance_in(
            tx,
            case_id=case_id,
            trigger=trigger,
            actor=who,
            clock=run.clock,
            staff_email=run.settings.staff_email,
            facts=facts,
            note=note,
            expected_version=if_version,
        )
        data = show(tx, case_id, actor=who)
    emit(as_json, data, _case_text)


@case.command("history")
@click.argument("case_id", metavar="ID", type=int)
@json_option
def case_history(case_id: int, as_json: bool) -> None:
    """Every move of a case: who fired which trigger, when, with which note and facts.

    Example: vetpro case history 2
    """
    from ..store.views import history

    with env().transaction(write=False) as tx:
        entries = history(tx, case_id)
    emit(as_json, entries, _history_text)


def _history_text(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        move = f"{e['source'] or '-':>13} -> {e['dest']:<13}"
        lines.append(f"{e['day']}  v{e['version']:<3} {e['trigger']:<20} {move} {e['actor']}")
        if e["facts"]:
            lines.append("      facts: " + shown_facts(e["facts"]))
        if e["note"]:
            lines.append(f"      note: {e['note']}")
    return "\n".join(lines)


@case.command("rederive")
@click.argument("case_id", metavar="ID", type=int)
@click.option("--actor", required=True, metavar="EMAIL", help="NA staff.")
@today_option
@json_option
def case_rederive(case_id: int, actor: str, today: str | None, as_json: bool) -> None:
    """Bring a project's phase back in line with its mobilities (for a project left behind).

    Example: vetpro case rederive 1 --actor officer@national-agency.example
    """
    from ..cases import rederive_phase

    run = env()
    with run.database() as db:
        decision = rederive_phase(
            db, case_id=case_id, actor=actor, clock=run.clock, staff_email=run.settings.staff_email
        )
    moves = [
        {"case_id": c.case_id, "trigger": c.trigger, "source": c.source, "dest": c.dest}
        for c in decision.changes
    ]
    emit(
        as_json,
        {"application": decision.project.id, "state": decision.project.state, "moves": moves},
        lambda d: (
            f"application {d['application']} is {d['state']}"
            + (
                "; moved: " + ", ".join(f"{m['source']} -> {m['dest']}" for m in d["moves"])
                if d["moves"]
                else "; nothing to change"
            )
        ),
    )


@app.command()
@click.argument("kind", type=click.Choice(KINDS))
@json_option
def diagram(kind: str, as_json: bool) -> None:
    """Print the mermaid state diagram of a workflow, drawn from its definition.

    Example: vetpro diagram mobility
    """
    from ..states.workflows import DEFINITIONS, mermaid

    text = mermaid(DEFINITIONS[kind])
    emit(as_json, {"kind": kind, "mermaid": text}, lambda d: d["mermaid"])
