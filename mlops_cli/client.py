"""The API, as the command line calls it: one session, the token in a header, problem details as exceptions."""
from __future__ import annotations

import time

import requests

RETRIES = 4  # a GET, or a POST with an idempotency key, is sent again after a dropped connection or a 502/503/504
RETRY_STATUSES = (502, 503, 504)


class PortalError(Exception):
    """The portal refused (a problem body), or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class Portal:
    def __init__(self, url: str, token: str, *, timeout: float = 30, verify: bool | str = True):
        self.base = url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json",
                                     "User-Agent": "mlops-portal-cli"})
        self.session.verify = verify
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, *, idempotency_key: str = "",
             params: dict | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        retries = RETRIES if method == "GET" or idempotency_key else 0
        for attempt in range(retries + 1):
            wait = min(2 ** attempt, 10)
            try:
                response = self.session.request(method, self.base + path, json=body, params=params,
                                                headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                if attempt == retries:
                    raise PortalError(f"Could not reach the portal at {self.base}: {exc}") from None
                time.sleep(wait)
                continue
            if response.status_code not in RETRY_STATUSES or attempt == retries:
                break
            time.sleep(float(response.headers.get("Retry-After", wait)) if response.headers.get(
                "Retry-After", "").isdigit() else wait)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            detail = problem.get("detail") or response.reason
            fields = "; ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors", []) if e.get("field"))
            raise PortalError(f"{response.status_code} {problem.get('title', response.reason)}: {detail}"
                              + (f" ({fields})" if fields and fields not in detail else ""),
                              status=response.status_code, problem=problem)
        return response.json()

    def get(self, path: str, **params) -> dict:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: dict, *, idempotency_key: str = "") -> dict:
        return self.call("POST", path, body, idempotency_key=idempotency_key)
