"""The errors a user can meet; each message says what was wrong and what to do next."""


class VetproError(Exception):
    """A refusal the user can act on; shown as one line, never as a traceback."""

    exit_code = 1


class NotFound(VetproError):
    """The named case, user or organisation does not exist."""


class InvalidInput(VetproError):
    """A field or value is malformed; the message names the field and what is allowed."""


class TransitionRefused(VetproError):
    """The trigger is unknown, not possible from the case's state, or a guard failed."""


class NotAllowed(VetproError):
    """The actor is unknown, has the wrong role, or belongs to another organisation."""


class ConflictError(VetproError):
    """Someone else changed the case since it was read; reload and try again."""

    exit_code = 3


class DeliveryError(VetproError):
    """Mail could not be delivered."""
