"""The `vetpro` command line used by NA staff and coordinators.

Errors become one `error:` line on stderr and an exit code here and nowhere else:
1 refused (guard, role, unknown trigger, bad input), 2 usage, 3 conflict.
Commands that run no flow never import Prefect, so they answer at once.
"""

from __future__ import annotations

from . import cases, flows, mail  # noqa: F401  (they register their commands on the app)
from .base import app


def main() -> None:
    """The console script."""
    app()
