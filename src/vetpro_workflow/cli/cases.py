"""The commands on cases: init, import, user add, case list/show/advance/history, diagram, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInput
from .base import JsonOpt, app, case_app, emit, env_of, open_engine, session_for, user_app


@app.command()
def init(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create the database and its tables (harmless when they exist)."""
    env = env_of(ctx)
    open_engine(env, create=True).dispose()
    emit(
        as_json,
        {"database": env.settings.database_url, "ready": True},
        lambda d: f"database ready: {d['database']}",
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Application documents (JSON), or folders of them.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Import application documents as drafted applications, each in its own transaction."""
    from ..imports import import_paths

    env = env_of(ctx)
    engine = open_engine(env)
    try:
        outcome = import_paths(engine, paths, clock=env.clock, progress=sys.stderr.isatty())
    finally:
        engine.dispose()
    if outcome.single is not None:
        emit(
            as_json,
            outcome.single,
            lambda d: (
                f"imported application {d['application']} with "
                f"mobilities {', '.join(map(str, d['mobilities']))}"
            ),
        )
        return
    summary = outcome.summary()
    emit(as_json, summary, lambda d: outcome.human())
    if outcome.refused:
        raise typer.Exit(1)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    role: Annotated[str, typer.Option("--role", help="staff or coordinator.")],
    org: Annotated[str | None, typer.Option("--org", help="A coordinator's organisation.")] = None,
    name: Annotated[str, typer.Option("--name", help="The person's name.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register NA staff, or a coordinator of an organisation."""
    from ..users import add_user

    with session_for(env_of(ctx), write=True) as session:
        user = add_user(session, email=email, role=role, organisation=org, name=name)
        data = {
            "id": user.id,
            "email": user.email,
            "role": user.role,
            "organisation_id": user.organisation_id,
        }
    emit(as_json, data, lambda d: f"registered {d['email']} as {d['role']}")


@case_app.command("list")
def case_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="application or mobility.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only cases in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List cases, oldest first."""
    from ..records import list_cases

    with session_for(env_of(ctx), write=False) as session:
        cases = list_cases(session, kind=kind, state=state)
    emit(as_json, cases, _cases_table)


def _cases_table(cases: list[dict[str, Any]]) -> str:
    if not cases:
        return "no cases"
    lines = [f"{'id':>6}  {'kind':<11}  {'state':<13}  title"]
    lines += [f"{c['id']:>6}  {c['kind']:<11}  {c['state']:<13}  {c['title']}" for c in cases]
    return "\n".join(lines)


@case_app.command("show")
def case_show(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Show a case: its state, the triggers allowed now and the next required step."""
    from ..records import show

    with session_for(env_of(ctx), write=False) as session:
        data = show(session, case_id)
    emit(as_json, data, _case_text)


def _case_text(c: dict[str, Any]) -> str:
    lines = [
        f"{c['kind'].capitalize()} {c['id']}: {c['title']}",
        f"  state      {c['state']} (version {c['version']})",
        f"  next step  {c['next_step']}",
        f"  allowed    {', '.join(c['allowed_triggers']) or '-'}",
    ]
    if c["facts"]:
        lines.append("  facts      " + ", ".join(f"{k}={v}" for k, v in c["facts"].items()))
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


def _facts(pairs: list[str]) -> dict[str, str]:
    facts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"--set: {pair!r} is not KEY=VALUE (e.g. --set departed_on=2027-09-06)"
            )
        facts[key.strip()] = value.strip()
    return facts


@case_app.command("advance")
def case_advance(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    trigger: Annotated[str, typer.Argument(metavar="TRIGGER")],
    actor: Annotated[str, typer.Option("--actor", help="Email of the person firing the trigger.")],
    note: Annotated[
        str | None, typer.Option("--note", help="Free text kept in the history.")
    ] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="A fact, KEY=VALUE.")] = None,
    if_version: Annotated[
        int | None,
        typer.Option(
            "--if-version", help="Refuse (exit 3) unless the case is still at this version."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fire a trigger on a case (exit 0 moved, 1 refused, 3 conflict)."""
    from ..cases import apply
    from ..records import show

    env = env_of(ctx)
    facts = _facts(sets or [])
    with session_for(env, write=True) as session:
        apply(
            session=session,
            case_id=case_id,
            trigger=trigger,
            actor=actor,
            clock=env.clock,
            facts=facts,
            note=note,
            expected_version=if_version,
            staff_email=env.settings.staff_email,
        )
        data = show(session, case_id)
    emit(as_json, data, _case_text)


@case_app.command("history")
def case_history(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Every move of a case: who fired which trigger, when, with which note and facts."""
    from ..records import history

    with session_for(env_of(ctx), write=False) as session:
        entries = history(session, case_id)
    emit(
        as_json,
        entries,
        lambda es: "\n".join(
            f"{e['at'][:10]}  {e['trigger']:<20} {e['source'] or '-':>13} -> {e['dest']:<13} "
            f"{e['actor']}{'  ' + e['note'] if e['note'] else ''}"
            for e in es
        ),
    )


@app.command()
def diagram(
    kind: Annotated[str, typer.Argument(help="application or mobility")],
    as_json: JsonOpt = False,
) -> None:
    """Print the mermaid state diagram of a workflow, drawn from its definition."""
    from ..states.workflows import DEFINITIONS, mermaid

    if kind not in DEFINITIONS:
        raise InvalidInput(f"KIND: {kind!r} is not a kind of case; use application or mobility")
    text = mermaid(DEFINITIONS[kind])
    emit(as_json, {"kind": kind, "mermaid": text}, lambda d: d["mermaid"])


@app.command()
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its database.")
    ] = Path(".demo"),
    as_json: JsonOpt = False,
) -> None:
    """Import the example application and walk it through every state, printing the timeline."""
    from ..demo import run_demo

    story = run_demo(workdir)
    emit(as_json, story.as_json(), lambda _: story.text())
