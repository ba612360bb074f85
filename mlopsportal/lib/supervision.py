"""Talking to the supervisord that `portal.py run` starts: the portal's processes are its programs.

`portal.py run` sets MLOPS_SUPERVISOR_CONFIG to the configuration it wrote; its [supervisorctl] section says where
the control socket is and its credentials. Without it (docker-compose, systemd, a test) there is no supervisord to ask,
and whoever runs the processes restarts them.
"""
from __future__ import annotations

import configparser
import logging
import os
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

log = logging.getLogger(__name__)


class NotSupervised(Exception):
    """No supervisord to ask, or it did not answer."""


def _proxy():
    path = os.environ.get("MLOPS_SUPERVISOR_CONFIG", "")
    if not path:
        raise NotSupervised("not started by portal.py run (no MLOPS_SUPERVISOR_CONFIG)")
    config = configparser.RawConfigParser()
    if not config.read(path) or not config.has_section("supervisorctl"):
        raise NotSupervised(f"cannot read supervisord's configuration {path}")
    section = dict(config.items("supervisorctl"))
    transport = SupervisorTransport(section.get("username"), section.get("password"), section["serverurl"])
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def program_kill(name: str) -> None:
    """SIGKILL a program so that supervisord starts it again at once (it restarts whatever exits). Used on a process
    that is alive but does not answer: one that is hung would not act on a polite SIGTERM."""
    try:
        _proxy().supervisor.signalProcess(name, "KILL")
    except (OSError, xmlrpc.client.Error) as exc:
        raise NotSupervised(f"supervisord did not take the restart of {name}: {exc}") from exc
