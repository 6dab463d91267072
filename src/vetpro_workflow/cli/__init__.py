"""The `vetpro` command line: the operator's tool, acting with the store's rights.

Errors become one `error:` line on stderr and an exit code: 1 refused, 2 usage, 3 conflict.
"""

from __future__ import annotations

from . import admin, calls, cases, intake, jobs, mail, people, web  # noqa: F401 (commands)
from .app import app


def main() -> None:
    """The console script."""
    app(prog_name="vetpro")
