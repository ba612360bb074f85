"""Runs the endpoint router (mlopsportal/backends/local/router.py) on the local backend's routing table, which it
first fills from the database: after an upgrade the table may not exist yet, and the router reads no database."""
from urllib.parse import urlparse

import uvloop
from aiohttp import web
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from deployments.serving import services
from mlopsportal.backends import BackendError
from mlopsportal.backends.local import LocalBackend
from mlopsportal.backends.local.router import make_app


class Command(BaseCommand):
    help = "Serve every endpoint's scoring URL, routing requests to its deployments by traffic weight."

    def add_arguments(self, parser):
        default = urlparse(settings.MLOPS_ROUTER_URL)
        parser.add_argument("--host", default=default.hostname or "127.0.0.1")
        parser.add_argument("--port", type=int, default=default.port or 8100)
        parser.add_argument("--refresh", type=float, default=0.25, help="seconds between checks of the routing table")

    def handle(self, *args, host, port, refresh, **options):
        try:
            services.routing_publish()
        except (BackendError, DatabaseError) as exc:
            self.stderr.write(f"Could not fill the routing table from the database ({exc}); routing by the one on disk.")
        self.stdout.write(f"Endpoint router on http://{host}:{port}/endpoints/<name>/score")
        # uvloop: the router sits on every scoring request's path, and its event loop is most of its cost.
        web.run_app(make_app(LocalBackend().routes_path, refresh), host=host, port=port, access_log=None, print=None,
                    loop=uvloop.new_event_loop())
