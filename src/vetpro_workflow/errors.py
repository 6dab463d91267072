"""The errors a user can meet; each message says what was wrong and what to do next.

They become exit codes (the command line) or HTTP statuses (the web) only at the edges.
"""


class VetproError(Exception):
    """A refusal the user can act on; shown as one line, never as a traceback."""

    exit_code = 1
    http_status = 400


class NotFound(VetproError):
    """The named case, user, call or organisation does not exist."""

    http_status = 404


class InvalidInput(VetproError):
    """A field or value is malformed; the message names the field and what is allowed."""

    http_status = 422


class TransitionRefused(VetproError):
    """The trigger is unknown, not possible from the case's state, or a guard failed."""

    http_status = 409


class NotAllowed(VetproError):
    """The actor is unknown, has the wrong role, or belongs to another organisation."""

    http_status = 403


class ConflictError(VetproError):
    """Someone else changed the case since it was read; reload and try again."""

    exit_code = 3
    http_status = 409


class DeliveryError(VetproError):
    """The mail server cannot be used (unreachable, or it refuses our login or sender)."""

    http_status = 503
