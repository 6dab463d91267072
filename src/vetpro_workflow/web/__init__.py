"""The web workspace of NA staff and coordinators, and the JSON API, on the service layer.

`create_app(settings)` in `web.app` builds the FastAPI application; pages are rendered on the
server with Jinja2; every state change goes through `cases.advance_in` or the intake services.
"""
