"""Every API error as RFC 9457 problem details (application/problem+json): a title, the status, the detail in words
and, for bad input, the fields at fault. Refusals of the services (a broken rule) read the same as the pages'."""
from __future__ import annotations

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from mlopsportal.backends import BackendError
from mlopsportal.lib.problem_types import CONTENT_TYPE, problem_body
from mlopsportal.lib.queue import QueueUnavailable
from mlopsportal.lib.refusals import in_words

log = logging.getLogger(__name__)


def problem(status_code: int, title: str, detail: str, *, kind: str, errors: list[dict] | None = None,
            headers: dict | None = None) -> Response:
    body = problem_body(status_code, kind, title, detail)
    if errors:
        body["errors"] = errors
    return Response(body, status=status_code, content_type=CONTENT_TYPE, headers=headers)


def _flatten(detail, path: str = "") -> list[dict]:
    """DRF's nested error detail as [{field, message}], the field as a dotted path ("" for the whole request)."""
    if isinstance(detail, dict):
        return [row for key, value in detail.items()
                for row in _flatten(value, f"{path}.{key}" if path else ("" if key in ("non_field_errors", "__all__")
                                                                          else str(key)))]
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": path, "message": str(item)} for item in detail]
        return [row for index, item in enumerate(detail) for row in _flatten(item, f"{path}.{index}" if path
                                                                              else str(index))]
    return [{"field": path, "message": str(detail)}]


def refused(exc: ValidationError) -> Response:
    """A service's refusal: 400 with the fields when it names fields of the request, else 409 (the state of the
    thing does not allow it now)."""
    if hasattr(exc, "error_dict"):
        errors = [{"field": "" if field == "__all__" else field, "message": message}
                  for field, messages in exc.message_dict.items() for message in messages]
        if any(row["field"] for row in errors):
            return problem(400, "The request has invalid fields", in_words(exc), kind="invalid", errors=errors)
    return problem(409, "Refused", in_words(exc), kind="refused")


def handler(exc, context):
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "; ".join(f"{row['field']}: {row['message']}" if row["field"] else row["message"] for row in errors)
        return problem(400, "The request has invalid fields", detail, kind="invalid", errors=errors)
    if isinstance(exc, ValidationError):
        return refused(exc)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return problem(404, "Not found", str(exc) if str(exc) and "No " in str(exc) else "There is nothing here.",
                       kind="not-found")
    if isinstance(exc, exceptions.NotAuthenticated) or isinstance(exc, exceptions.AuthenticationFailed):
        return problem(401, "Not signed in", str(exc.detail), kind="unauthenticated",
                       headers={"WWW-Authenticate": 'Bearer realm="api"'})
    if isinstance(exc, (PermissionDenied, exceptions.PermissionDenied)):
        detail = str(getattr(exc, "detail", "")) or "Your role may not do this."
        return problem(403, "Forbidden", detail, kind="forbidden")
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)
        return problem(429, "Too many requests", f"This token's rate limit is reached; try again in {wait} s.",
                       kind="rate-limited", headers={"Retry-After": str(wait)})
    if isinstance(exc, QueueUnavailable):
        return problem(503, "The task queue is unreachable", str(exc), kind="queue-unavailable",
                       headers={"Retry-After": "30"})
    if isinstance(exc, BackendError):
        return problem(502, "The ML platform refused", f"The ML platform did not take it, so nothing changed: {exc}",
                       kind="platform")
    if isinstance(exc, exceptions.APIException):  # a malformed body, a method or media type not taken...
        return problem(exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail), kind="http")
    log.exception("API error on %s", context["request"].path)  # a bug: said plainly, the traceback in the log
    return problem(500, "Server error", "The portal failed on this request; the error is in its log.", kind="server")
