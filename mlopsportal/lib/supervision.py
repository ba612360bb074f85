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


def program_kill(name: str, *, up_for: float) -> bool:
    """SIGKILL a program so that supervisord starts it again at once (it restarts whatever exits), if it has been
    RUNNING for `up_for` seconds: one still starting (or just restarted) is left to come up. Used on a process that
    is alive but does not answer: one that is hung would not act on a polite SIGTERM. Returns whether it was killed."""
    try:
        supervisor = _proxy().supervisor
        info = supervisor.getProcessInfo(name)
        if info["statename"] != "RUNNING" or info["now"] - info["start"] < up_for:
            return False
        supervisor.signalProcess(name, "KILL")
        return True
    except (OSError, xmlrpc.client.Error, KeyError) as exc:
        raise NotSupervised(f"supervisord did not take the restart of {name}: {exc}") from exc
