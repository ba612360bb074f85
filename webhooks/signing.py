"""How a delivery is signed, and how a receiver checks it (the README has the same few lines for receivers).

signature = hex HMAC-SHA256(secret, f"{timestamp}.{body}"), sent as `X-MLOps-Signature: sha256=<hex>` with the Unix
`X-MLOps-Timestamp`. A receiver recomputes it over the raw body and refuses a timestamp older than the replay window
(REPLAY_WINDOW_SECONDS), so a captured delivery cannot be sent again later."""
import hashlib
import hmac
import time

REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None) -> bool:
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent) > REPLAY_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")
