"""The commands on the agency's calls: call add/list/show/ranking."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import click

from .app import call, emit, env, json_option, today_option


@call.command("add")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--actor", required=True, metavar="EMAIL", help="NA staff defining the call.")
@click.option("--force", is_flag=True, help="Change the rules of a call that has applications.")
@click.option("--note", help="Why the call changes (needed with --force).")
@today_option
@json_option
def call_add(
    path: Path, actor: str, force: bool, note: str | None, today: str | None, as_json: bool
) -> None:
    """Add a call from a JSON document, or change one (each change is a new version).

    \b
    The document: code, title, application_deadline (with its offset), earliest_start,
    max_project_months, min_days (7), max_days (42), and optionally
    evaluation: {scale (10), weights per criterion (1), pass_mark (60 % of the maximum)}.
    Example: vetpro call add examples/call.json --actor officer@national-agency.example
    """
    from ..intake.documents import parse_call, read_bytes
    from ..store.calls import define
    from ..store.users import resolve

    run = env()
    doc = parse_call(read_bytes(path), source=str(path))
    with run.transaction(write=True) as tx:
        done = define(tx, doc, actor=resolve(tx, actor), now=run.clock.now, force=force, note=note)
    emit(
        as_json,
        done,
        lambda d: (
            f"call {d['code']} {d['action']} (version {d['version']})"
            + (f": {', '.join(d['changes'])}" if d["action"] == "changed" else "")
        ),
    )


@call.command("list")
@json_option
def call_list(as_json: bool) -> None:
    """List the calls, the latest deadline first.

    Example: vetpro call list
    """
    from ..store.calls import list_calls

    with env().transaction(write=False) as tx:
        calls = list_calls(tx)
    emit(
        as_json,
        calls,
        lambda cs: (
            "\n".join(
                f"{c['code']:<20} deadline {c['deadline_brussels']}  v{c['version']}  {c['title']}"
                for c in cs
            )
            or "no calls"
        ),
    )


def _call_text(c: dict[str, Any]) -> str:
    lines = [
        f"Call {c['code']} (version {c['version']}): {c['title']}",
        f"  deadline        {c['deadline_brussels']}",
        f"  projects        start on or after {c['earliest_start']}, "
        f"at most {c['max_project_months']} months",
        f"  stays abroad    {c['min_days']} to {c['max_days']} days",
        f"  evaluation      0-{c['scale']} per criterion, weights "
        + ", ".join(f"{k} {v:g}" for k, v in c["weights"].items())
        + f"; pass mark {c['pass_mark']:g} of {c['max_total']:g}",
        "  applications    "
        + (", ".join(f"{s} {n}" for s, n in c["applications"].items()) or "none"),
    ]
    for v in c["versions"]:
        lines.append(
            f"  v{v['version']:<3} {v['at'][:10]} {v['actor']}: {', '.join(v['changes'])}"
            + (f" ({v['note']})" if v["note"] else "")
        )
    return "\n".join(lines)


@call.command("show")
@click.argument("code")
@json_option
def call_show(code: str, as_json: bool) -> None:
    """Show a call: its rules, its versions and its applications per state.

    Example: vetpro call show LDV-VETPRO-2027
    """
    from ..store.calls import show

    with env().transaction(write=False) as tx:
        data = show(tx, code)
    emit(as_json, data, _call_text)


def _ranking_table(d: dict[str, Any]) -> str:
    lines = [
        f"Call {d['call']}: submitted applications by score "
        f"(pass mark {d['pass_mark']:g} of {d['max_total']:g})"
    ]
    lines.append(f"{'rank':>4}  {'case':>6}  {'score':>6}  {'mob.':>4}  applicant / title")
    drawn = False
    for a in d["applications"]:
        if not drawn and not a["passes"]:
            lines.append(f"{'':>4}  {'-' * 6}  pass mark {d['pass_mark']:g}  {'-' * 30}")
            drawn = True
        score = f"{a['score']:g}" if a["score"] is not None else "-"
        lines.append(
            f"{a['rank'] or '-':>4}  {a['id']:>6}  {score:>6}  {a['mobilities']:>4}  "
            f"{a['applicant']} ({a['country']}): {a['title']}"
        )
    return "\n".join(lines)


def _ranking_csv(d: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["rank", "case", "score", "passes", "mobilities", "applicant", "country", "title"]
    )
    for a in d["applications"]:
        writer.writerow(
            [
                a["rank"] or "",
                a["id"],
                "" if a["score"] is None else a["score"],
                a["passes"],
                a["mobilities"],
                a["applicant"],
                a["country"],
                a["title"],
            ]
        )
    return out.getvalue().rstrip("\n")


@call.command("ranking")
@click.argument("code")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@json_option
def call_ranking(code: str, fmt: str, as_json: bool) -> None:
    """The call's submitted applications ranked by total score, with the pass mark drawn.

    Example: vetpro call ranking LDV-VETPRO-2027 --format csv
    """
    from ..store.calls import ranking

    with env().transaction(write=False) as tx:
        data = ranking(tx, code)
    emit(as_json or fmt == "json", data, _ranking_csv if fmt == "csv" else _ranking_table)
