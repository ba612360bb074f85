"""One way to turn a refusal (a broken rule, a platform error, the queue down) into words for a person."""
from django.core.exceptions import ValidationError


def in_words(exc: Exception) -> str:
    """The message of a ValidationError (all of them, in one line) or of any other exception."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or exc.__class__.__name__
