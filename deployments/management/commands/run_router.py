"""Runs the endpoint router (see mlopsportal/backends/local/router.py)."""
from urllib.parse import urlparse

import uvloop
from aiohttp import web
from django.conf import settings
from django.core.management.base import BaseCommand

from mlopsportal.backends.local.router import make_app


class Command(BaseCommand):
    help = "Serve every endpoint's scoring URL, routing requests to its deployments by traffic weight."

    def add_arguments(self, parser):
        default = urlparse(settings.MLOPS_ROUTER_URL)
        parser.add_argument("--host", default=default.hostname or "127.0.0.1")
        parser.add_argument("--port", type=int, default=default.port or 8100)
        parser.add_argument("--refresh", type=float, default=0.25, help="seconds between routing-table reloads")

    def handle(self, *args, host, port, refresh, **options):
        self.stdout.write(f"Endpoint router on http://{host}:{port}/endpoints/<name>/score")
        # uvloop: the router sits on every scoring request's path, and its event loop is most of its cost.
        web.run_app(make_app(refresh), host=host, port=port, access_log=None, print=None,
                    loop=uvloop.new_event_loop())
