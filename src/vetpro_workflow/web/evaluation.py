"""Evaluation pages (staff): scoring a submitted application on the six quality criteria beside
its content, and a call's ranking with the pass mark drawn, from which staff approve or reject.
Both post to the case's advance route, like every other action."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import NotFound
from ..states.calendar import stay_days
from ..states.facts import CRITERIA
from ..store import calls
from ..store.snapshots import load_project_of
from ..store.views import show
from .templating import render
from .workspace import Workspace

BAR_WIDTH = 240


def _mobilities(project: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "state": m.state,
            "participant": m.participant_name,
            "profession": m.profession.replace("_", " "),
            "background": m.professional_background,
            "needs": m.training_needs,
            "host": f"{m.host_name} ({m.host_country})",
            "start": m.start_date,
            "end": m.end_date,
            "days": stay_days(m.start_date, m.end_date),
            "objectives": m.objectives,
            "content": m.content,
            "language_preparation": m.language_preparation,
        }
        for m in project.live_mobilities()
    ]


def evaluate_page(
    request: Request,
    space: Workspace,
    case_id: int,
    *,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The evaluation form of an application beside its content."""
    account = request.state.account
    with space.db.transaction(write=False) as tx:
        project = load_project_of(tx, case_id)
        if project.id != case_id:
            raise NotFound(f"case {case_id} is a mobility; evaluate its application {project.id}")
        case = show(tx, case_id, actor=account.actor)
    scores = dict(project.facts.get("scores") or {})
    values = {c: (posted or {}).get(f"fact_{c}", str(scores.get(c, ""))) for c in CRITERIA}
    return render(
        request,
        "evaluate.html",
        status=status,
        title=f"Evaluate application {case_id}: {project.title}",
        case=case,
        project=project,
        mobilities=_mobilities(project),
        call=project.call,
        criteria=CRITERIA,
        values=values,
        note=(posted or {}).get("note", ""),
        may_evaluate="evaluate" in case["allowed_triggers"],
        error=error,
    )


def _bars(result: dict[str, Any]) -> dict[str, Any]:
    """Where the pass mark and each score fall on a bar of BAR_WIDTH points."""
    top = result["max_total"] or 1
    return {
        "width": BAR_WIDTH,
        "mark": round(BAR_WIDTH * result["pass_mark"] / top),
        "scores": {
            row["id"]: round(BAR_WIDTH * (row["score"] or 0) / top)
            for row in result["applications"]
        },
    }


def ranking_page(
    request: Request,
    space: Workspace,
    code: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """A call's submitted applications by score; the pass mark drawn between those that reach
    it and those that do not."""
    with space.db.transaction(write=False) as tx:
        result = calls.ranking(tx, code)
    rows = result["applications"]
    passing = [r for r in rows if r["passes"]]
    below = [r for r in rows if not r["passes"]]
    return render(
        request,
        "ranking.html",
        status=status,
        title=f"Ranking of call {code}",
        code=code,
        result=result,
        passing=passing,
        below=below,
        bars=_bars(result),
        error=error,
    )
