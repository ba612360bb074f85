"""How the current request acts: through the pages, or through the API with a token. The API sets it for the length
of a request, so every audit event recorded while serving it says `via=api` and which credential was used, without
each service being told."""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class Acting:
    via: str  # "api"
    credential: str  # "token mlp_1a2b3c4d (ci-pipeline)", or "session": never the secret itself


_acting: contextvars.ContextVar[Acting | None] = contextvars.ContextVar("acting", default=None)


def acting() -> Acting | None:
    return _acting.get()


@contextlib.contextmanager
def acting_as(value: Acting):
    token = _acting.set(value)
    try:
        yield value
    finally:
        _acting.reset(token)
