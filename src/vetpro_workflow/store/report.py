"""Figures for the agency: cases per state, per call and per country, and how the mail went."""

from __future__ import annotations

from typing import Any

from .database import Tx


def figures(tx: Tx) -> dict[str, list[dict[str, Any]]]:
    """Every table of the report, as rows."""
    return {
        "cases per state": tx.rows(
            'SELECT kind, state, count(*) AS cases FROM "case" GROUP BY kind, state '
            "ORDER BY kind, state"
        ),
        "applications per call": tx.rows(
            "SELECT k.code AS call, c.state, count(*) AS applications FROM application a "
            'JOIN "case" c ON c.id = a.id JOIN "call" k ON k.id = a.call_id '
            "GROUP BY k.code, c.state ORDER BY k.code, c.state"
        ),
        "cases per country": tx.rows(
            'SELECT o.country, c.kind, count(*) AS cases FROM "case" c '
            "JOIN organisation o ON o.id = c.organisation_id "
            "GROUP BY o.country, c.kind ORDER BY o.country, c.kind"
        ),
        "mobilities per host country": tx.rows(
            'SELECT h.country, c.state, count(*) AS mobilities FROM mobility m JOIN "case" c '
            "ON c.id = m.id JOIN organisation h ON h.id = m.host_id "
            "GROUP BY h.country, c.state ORDER BY h.country, c.state"
        ),
        "mail": tx.rows(
            "SELECT kind, status, count(*) AS messages, sum(attempts) AS attempts FROM outbox "
            "GROUP BY kind, status ORDER BY kind, status"
        ),
    }
