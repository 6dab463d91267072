"""Evaluation against the seed's six quality criteria: scores on the call's scale, their
weighted total, and the pass mark an approval needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .facts import CRITERIA
from .snapshots import ApplicationSnapshot, Given


def scores_on_scale(a: ApplicationSnapshot, given: Given) -> str | None:
    """Every score lies on the call's scale."""
    scale = a.call.scale
    off = [
        f"{name}={given.facts[name]}"
        for name in CRITERIA
        if name in given.fresh and not 0 <= given.facts[name] <= scale
    ]
    return f"needs scores from 0 to {scale} (not {', '.join(off)})" if off else None


def evaluation_total(a: ApplicationSnapshot, scores: dict[str, float]) -> float:
    """The weighted total of an evaluation's scores, under the call's weights."""
    return round(sum(scores[c] * a.call.weights.get(c, 1) for c in CRITERIA), 2)


def evaluated_to_pass_mark(a: ApplicationSnapshot, given: Given) -> str | None:
    """The latest evaluation reaches the call's pass mark."""
    score, call = a.facts.get("score"), a.call
    mark = f"the pass mark ({call.mark:g} of {call.max_total:g})"
    if score is None:
        return f"needs an evaluation (evaluate) at or above {mark}"
    if score < call.mark:
        return f"needs an evaluation at or above {mark}; the latest totals {score:g}"
    return None


def evaluated(a: ApplicationSnapshot, facts: Mapping[str, Any], given: Given) -> dict[str, Any]:
    scores = {c: facts[c] for c in CRITERIA}
    return {"scores": scores, "score": evaluation_total(a, scores), "evaluated_on": given.today}
