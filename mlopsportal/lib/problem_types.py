"""The kinds of problem the API answers with (RFC 9457 `type`), shared by the API and the code that answers for it
before a request reaches it (the NUL middleware, the catch-all 404). A type is a tag URI (RFC 4151): an identifier to
match on, not a page to fetch."""
from django.http import JsonResponse

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "tag:mlops-portal,2026:problem:"
PROBLEM_KINDS = ("invalid", "refused", "not-found", "unauthenticated", "forbidden", "rate-limited",
                 "idempotency-key-reused", "queue-unavailable", "platform", "http", "server")


def problem_type(kind: str) -> str:
    if kind not in PROBLEM_KINDS:
        raise ValueError(f"{kind!r} is not a problem kind the schema lists")
    return TYPE_BASE + kind


def problem_body(status: int, kind: str, title: str, detail: str) -> dict:
    return {"type": problem_type(kind), "title": title, "status": status, "detail": detail}


def problem_json(status: int, kind: str, title: str, detail: str) -> JsonResponse:
    """A problem answered outside Django REST framework (which renders api.problems.problem)."""
    return JsonResponse(problem_body(status, kind, title, detail), status=status, content_type=CONTENT_TYPE)
