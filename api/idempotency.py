"""Idempotency-Key on the POSTs that start things (training, promotion, rollback): the same key again from the same
user gets the first answer back and starts nothing. The key's row is written in the transaction that starts the
work, so a start that failed leaves no key behind, and a retry racing the first call waits for it on the unique
index, then gets its answer."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from mlopsportal.lib.queue import QueueUnavailable

from .models import IdempotencyKey
from .problems import problem

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


def _request_hash(request) -> str:
    return hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()


def _replay(row: IdempotencyKey, route: str, digest: str) -> Response:
    if row.route != route or row.request_hash != digest:
        return problem(422, "Idempotency-Key reused", f"This {HEADER} was used for a different request "
                       f"({row.route}, at {row.created_at:%Y-%m-%d %H:%M:%S} UTC); use a new key for a new request.",
                       kind="idempotency-key-reused")
    return Response(row.response, status=row.status_code, headers={"Idempotent-Replayed": "true"})


def idempotent(request, start: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return start()
    if not KEY_RE.match(key):
        return problem(400, "Bad Idempotency-Key", f"{HEADER} must be 1 to 200 printable ASCII characters without "
                       "spaces, e.g. a UUID.", kind="invalid",
                       errors=[{"field": HEADER, "message": "1 to 200 printable ASCII characters."}])
    route, digest = f"{request.method} {request.path}", _request_hash(request)
    earlier = IdempotencyKey.objects.filter(user=request.user, key=key).first()
    if earlier is not None:
        return _replay(earlier, route, digest)
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(user=request.user, key=key, route=route, request_hash=digest,
                                                status_code=0, response={})
            response = start()
            if response.status_code >= 400:
                transaction.set_rollback(True)  # nothing started: the key stays free for a retry
                return response
            row.status_code, row.response = response.status_code, response.data
            row.save(update_fields=["status_code", "response"])
    except IntegrityError:
        # Another call with this key committed first (it held the key while it ran): its answer is ours.
        first = IdempotencyKey.objects.filter(user=request.user, key=key).first()
        if first is None:
            raise  # not the key: something the start itself ran into
        return _replay(first, route, digest)
    except QueueUnavailable:
        # The rows committed, then the broker refused: they say "not started", so a retry must start anew.
        IdempotencyKey.objects.filter(pk=row.pk).delete()
        raise
    return response
