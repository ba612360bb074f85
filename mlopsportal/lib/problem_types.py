"""The kinds of problem the API answers with (RFC 9457 `type`), shared by the API and the middleware that refuses
requests before they reach it. A type is a tag URI (RFC 4151): an identifier to match on, not a page to fetch."""
TYPE_BASE = "tag:mlops-portal,2026:problem:"
PROBLEM_KINDS = ("invalid", "refused", "not-found", "unauthenticated", "forbidden", "rate-limited",
                 "idempotency-key-reused", "queue-unavailable", "platform", "http", "server")


def problem_type(kind: str) -> str:
    if kind not in PROBLEM_KINDS:
        raise ValueError(f"{kind!r} is not a problem kind the schema lists")
    return TYPE_BASE + kind
