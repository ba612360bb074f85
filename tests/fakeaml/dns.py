"""Host redirection: management.azure.com and every *.blob.core.windows.net resolve to the fake on 127.0.0.1.

Patches socket.getaddrinfo in this process, so a production-identical `MLClient(cred, sub, rg, ws)` and the storage
clients reach the fake without any `cloud=` argument; every other name resolves as before. TLS still checks the
real host names (the fake's certificate carries them). A process started by a test (a Celery worker) calls
`install_from_env()` at import time of its settings to get the same patch.
"""
import os
import socket
import threading
from contextlib import contextmanager

ENV_PORT = "MLOPS_TEST_FAKE_AZURE_PORT"
_original = socket.getaddrinfo
_lock = threading.Lock()
_port: int | None = None


def routed(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.lower().rstrip(".")
    return host == "management.azure.com" or host.endswith((".blob.core.windows.net", ".api.azureml.ms"))


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    target = _port
    if target is not None and routed(host):
        return _original("127.0.0.1", target, socket.AF_INET, type, proto, flags)
    return _original(host, port, family, type, proto, flags)


def install(port: int) -> None:
    """Route the Azure names to 127.0.0.1:`port` (replaces an earlier port)."""
    global _port
    with _lock:
        _port = int(port)
        socket.getaddrinfo = _getaddrinfo


def uninstall() -> None:
    global _port
    with _lock:
        _port = None
        if socket.getaddrinfo is _getaddrinfo:
            socket.getaddrinfo = _original


def installed_port() -> int | None:
    return _port if socket.getaddrinfo is _getaddrinfo else None


def install_from_env() -> bool:
    """Install the patch when MLOPS_TEST_FAKE_AZURE_PORT is set (a test started this process); True if it did."""
    port = os.environ.get(ENV_PORT)
    if not port:
        return False
    install(int(port))
    return True


@contextmanager
def route_hosts(port: int):
    previous = installed_port()
    install(port)
    try:
        yield
    finally:
        if previous is None:
            uninstall()
        else:
            install(previous)
