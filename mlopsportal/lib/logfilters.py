"""Logging filters: a refused request is one line in the log, not a traceback."""
import logging


class ClientErrorsInOneLine(logging.Filter):
    """Drop the traceback from django.request's records of 4xx answers.

    Django logs a PermissionDenied (every 403 of `permission_required(raise_exception=True)`), a 404 raised as Http404
    and a SuspiciousOperation with the exception attached, so each refusal printed a whole traceback. The request was
    answered as it should be: its path and status say all there is. 5xx records keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if 400 <= getattr(record, "status_code", 0) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
