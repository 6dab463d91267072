"""`vetpro web`: the web workspace and the JSON API, served with uvicorn.

People get their way in with `vetpro user add … --password-stdin` and `vetpro user token`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .app import app, env

if TYPE_CHECKING:
    pass


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The port."
)
def web(host: str, port: int) -> None:
    """Serve the web workspace and the JSON API (set VETPRO_WEB_URL to where people reach it).

    Example: VETPRO_SECRET_KEY=... vetpro web --port 8000
    """
    import uvicorn

    from ..store.database import Database
    from ..store.schema import require_schema
    from ..web.app import create_app

    settings = env().settings
    with Database(settings.database_url) as db:
        require_schema(db)
    if settings.secret_key is None:
        click.echo(
            "note: VETPRO_SECRET_KEY is not set; sessions end when this server stops",
            err=True,
        )
    click.echo(f"serving the workspace on http://{host}:{port} (Ctrl+C stops it)", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
