"""FakeAzureML: a small but real Azure ML workspace on 127.0.0.1 that the unmodified azure-ai-ml SDK talks to.

Two servers: HTTPS for ARM (management.azure.com) and the storage account (fakestore.blob.core.windows.net), the
names redirected here by tests/fakeaml/dns.py; and plain HTTP for the endpoints' scoring URIs, which checks the key
and proxies to the deployment's inference server. Every request is recorded; tests can inject responses, make a
long operation fail, or hold deployments in Creating.
"""
import base64
import http.client
import json
import random
import re
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from azure.core.credentials import AccessToken, AccessTokenInfo

from . import certs
from .arm import Workspace
from .blobs import BlobStore
from .blobs import _error as blob_error
from .common import ACCOUNT, CONTAINER, PROVIDER, REGION, RG, SUB, TENANT, WS, error, now_iso
from .dns import ENV_PORT
from .workloads import alive

WS_PATH = re.compile(rf"^/subscriptions/{SUB}/resourceGroups/{RG}/providers/{PROVIDER}/workspaces/{WS}(?P<rest>/.*)?$",
                     re.I)
OPS_PATH = re.compile(rf"^/subscriptions/{SUB}/providers/{PROVIDER}/locations/{REGION}/"
                      rf"(?P<kind>mfeOperationsStatus|mfeOperationResults)/(?P<id>[^/]+)$", re.I)
# Run history, on the region's api.azureml.ms host that the workspace's discovery URL names.
RUN_DETAILS_PATH = re.compile(rf"^/history/v1\.0/subscriptions/{SUB}/resourceGroups/{RG}/providers/{PROVIDER}/"
                              rf"workspaces/{WS}/runs/(?P<run>[^/]+)/details$", re.I)
N = r"(?P<name>[^/]+)"
V = r"(?P<version>[^/]+)"
E = r"(?P<endpoint_name>[^/]+)"
WS_API, COMPUTE_API, DATA_API, CODE_API = {"2024-10-01-preview"}, {"2023-08-01-preview"}, {"2024-10-01-preview"}, {
    "2023-04-01"}
JOB_GET, JOB_PUT, JOB_CANCEL, MODEL_API = {"2024-01-01-preview"}, {"2025-01-01-preview"}, {"2023-04-01-preview"}, {
    "2023-08-01-preview"}
ENDPOINT_API, DEPLOYMENT_API = {"2022-02-01-preview"}, {"2023-04-01-preview"}
# (method, path below the workspace, Workspace method, the api-versions azure-ai-ml 1.35.2 sends there: measured;
# another version gets the service's 400 InvalidApiVersionParameter, so an SDK upgrade that changes them shows up)
ROUTES = [
    ("GET", r"", "workspace", WS_API),
    ("GET", rf"/computes/{N}", "compute", COMPUTE_API),
    ("GET", r"/datastores", "datastores", DATA_API),
    ("GET", rf"/datastores/{N}", "datastore", DATA_API),
    ("POST", rf"/datastores/{N}/listSecrets", "datastore_secrets", DATA_API),
    ("GET", rf"/codes/{N}/versions", "code_versions", CODE_API),
    ("GET", rf"/codes/{N}/versions/{V}", "code_get", CODE_API),
    ("PUT", rf"/codes/{N}/versions/{V}", "code_put", CODE_API),
    ("POST", rf"/codes/{N}/versions/{V}/startPendingUpload", "code_pending_upload", CODE_API),
    ("GET", r"/jobs", "job_list", JOB_GET),
    ("GET", rf"/jobs/{N}", "job_get", JOB_GET),
    ("PUT", rf"/jobs/{N}", "job_put", JOB_PUT),
    ("POST", rf"/jobs/{N}/cancel", "job_cancel", JOB_CANCEL),
    ("GET", r"/models", "model_containers", MODEL_API),
    ("GET", rf"/models/{N}", "model_container", MODEL_API),
    ("GET", rf"/models/{N}/versions", "model_versions", MODEL_API),
    ("GET", rf"/models/{N}/versions/{V}", "model_get", MODEL_API),
    ("PUT", rf"/models/{N}/versions/{V}", "model_put", MODEL_API),
    ("GET", r"/onlineEndpoints", "endpoint_list", ENDPOINT_API),
    ("GET", rf"/onlineEndpoints/{N}", "endpoint_get", ENDPOINT_API | DEPLOYMENT_API),  # deployments' check: 2023
    ("PUT", rf"/onlineEndpoints/{N}", "endpoint_put", ENDPOINT_API),
    ("DELETE", rf"/onlineEndpoints/{N}", "endpoint_delete", ENDPOINT_API),
    ("POST", rf"/onlineEndpoints/{N}/listKeys", "endpoint_keys", ENDPOINT_API),
    ("POST", rf"/onlineEndpoints/{N}/regenerateKeys", "endpoint_regenerate_keys", ENDPOINT_API),
    ("GET", rf"/onlineEndpoints/{E}/deployments", "deployment_list", DEPLOYMENT_API | ENDPOINT_API),  # traffic: 2022
    ("GET", rf"/onlineEndpoints/{E}/deployments/{N}", "deployment_get", DEPLOYMENT_API),
    ("PUT", rf"/onlineEndpoints/{E}/deployments/{N}", "deployment_put", DEPLOYMENT_API),
    ("DELETE", rf"/onlineEndpoints/{E}/deployments/{N}", "deployment_delete", DEPLOYMENT_API),
    ("POST", rf"/onlineEndpoints/{E}/deployments/{N}/getLogs", "deployment_logs", DEPLOYMENT_API),
]
COMPILED = [(m, re.compile(f"^{p}$", re.I), h, v) for m, p, h, v in ROUTES]
KEPT_HEADERS = ("content-type", "x-ms-blob-type", "x-ms-range", "range", "azureml-model-deployment",
                "if-none-match", "x-ms-client-request-id")
DEFAULT_CODES = {400: "BadRequest", 401: "AuthenticationFailed", 403: "AuthorizationFailed", 404: "NotFound",
                 409: "Conflict", 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                 503: "ServiceUnavailable", 504: "GatewayTimeout"}


def _fake_jwt() -> str:
    """An unsigned-looking JWT: the SDK decodes the token (without verifying it) for the tenant id ("tid")."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"aud": "https://management.azure.com/", "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT,
              "oid": "22222222-2222-2222-2222-222222222222", "upn": "fake-user@example.com",
              "exp": int(time.time()) + 3600}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.ZmFrZS1zaWduYXR1cmU"


class FakeCredential:
    """An azure.core TokenCredential (and SupportsTokenInfo) handing out a fake bearer token."""

    def __init__(self):
        self.scopes: list[tuple] = []
        self.token = _fake_jwt()

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes, options=None) -> AccessTokenInfo:
        self.scopes.append(scopes)
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


@dataclass
class Request:
    method: str
    host: str
    path: str
    query: dict
    api_version: str | None
    body: object
    headers: dict
    status: int | None = None
    injected: bool = False
    at: float = field(default_factory=time.time)

    def __repr__(self):
        return f"<{self.method} {self.host}{self.path} api-version={self.api_version} -> {self.status}>"


@dataclass
class _Injection:
    method: str
    path: re.Pattern
    host: re.Pattern | None
    status: int
    times: int
    headers: dict
    body: object


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAzureML/1.0"
    timeout = 30  # idle keep-alive connections end, so their threads do too

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        try:
            status, headers, payload = self.server.app(self.command, self.path, self.headers, self._body())
        except Exception:  # a bug in the fake: answer like the service would, and say where
            traceback.print_exc(file=sys.stderr)
            status, headers, payload = 500, {"Content-Type": "application/json"}, json.dumps(
                {"error": {"code": "InternalServerError", "message": traceback.format_exc()}}).encode()
        self.send_response(status)
        headers = {"x-ms-request-id": str(uuid.uuid4()), **headers}
        headers.setdefault("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app, ssl_context: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app, self.ssl_context = app, ssl_context

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:  # the handshake in the connection's own thread, not the accept loop
            request.settimeout(10)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ssl_context is not None:
                request.close()

    def handle_error(self, request, client_address):
        pass  # clients dropping connections (pool teardown, timeouts) are not errors of the fake


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeAzureML:
    """The fake service. `start()` it (or use it as a context manager), point the SDK at it with `env()` and the DNS
    patch (the `fake_aml` fixture does both), and `stop()` it: that kills every process it started."""

    def __init__(self, root: Path | None = None, *, lro_seconds: float = 0.3, job_queue_seconds: float = 0.3,
                 poll_after_ms: int = 200, seed: int | None = None):
        self._own_root = root is None
        self.random = random.Random(seed)  # picks deployments by traffic weight; seed it for a fixed sequence
        self.root = Path(root or tempfile.mkdtemp(prefix="fakeaml-"))
        self.poll_after_ms = poll_after_ms
        self.blobs = BlobStore(self.root / "blobstore")
        self.requests: list[Request] = []
        self._injections: list[_Injection] = []
        self._lock = threading.Lock()
        self.workspace = Workspace(self.root, self.blobs, scoring_port=0, free_port=_free_port,
                                   lro_seconds=lro_seconds, job_queue_seconds=job_queue_seconds)
        self._servers: list[_Server] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> "FakeAzureML":
        self.cert_path, key_path = certs.generate(self.root / "tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self._https = _Server(self._handle, context)
        self._scoring = _Server(self._handle_scoring)
        self._servers = [self._https, self._scoring]
        self.port, self.scoring_port = self._https.server_address[1], self._scoring.server_address[1]
        self.workspace.scoring_port = self.scoring_port
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self._monitor = threading.Thread(target=self._watch, daemon=True, name="fakeaml-monitor")
        self._monitor.start()
        return self

    def stop(self) -> None:
        """Stops both servers, kills every job process and inference server, and removes the data folder."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(10)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self.workspace.stop_all()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _watch(self) -> None:
        while not self._stopping.wait(0.1):
            try:
                self.workspace.tick()
            except Exception:
                traceback.print_exc(file=sys.stderr)

    # --- what tests use --------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return str(self.cert_path)

    def env(self) -> dict[str, str]:
        """The environment a worker subprocess needs to reach this fake (with dns.install_from_env())."""
        return {"REQUESTS_CA_BUNDLE": str(self.cert_path), ENV_PORT: str(self.port)}

    def find(self, method: str, path_regex: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (method == "*" or r.method == method.upper())
                    and re.search(path_regex, r.path)]

    def inject(self, method: str, path_regex: str, status: int, *, times: int = 1, headers: dict | None = None,
               body=None, host_regex: str | None = None) -> None:
        """The next `times` requests matching method (or "*"), path and host get this response instead. The body
        defaults to the service's error shape (XML for storage hosts); a dict is sent as JSON."""
        with self._lock:
            self._injections.append(_Injection(method.upper(), re.compile(path_regex),
                                               re.compile(host_regex) if host_regex else None, status, times,
                                               dict(headers or {}), body))

    def fail_operation(self, path_regex: str, message: str, *, code: str = "InternalServerError") -> None:
        """The next long-running operation started on a matching path ends Failed with this error (the resource
        ends in provisioningState Failed; a failed deployment's server is stopped)."""
        with self.workspace.lock:
            self.workspace.failing_operations.append((re.compile(path_regex), code, message))

    @property
    def hold_deployments(self) -> bool:
        return self.workspace.hold_deployments

    @hold_deployments.setter
    def hold_deployments(self, value: bool) -> None:
        """While True, deployments stay Creating/Updating (their servers are never reported healthy)."""
        self.workspace.hold_deployments = bool(value)

    def set_traffic_outside(self, endpoint: str, traffic: dict[str, int]) -> None:
        """Changes an endpoint's traffic as someone in the Studio would (no operation, effective at once)."""
        with self.workspace.lock:
            self.workspace.endpoints[endpoint]["properties"]["traffic"] = {k: int(v) for k, v in traffic.items()}

    def datastore_path(self, uri: str) -> Path:
        """The local folder of an azureml://datastores/workspaceblobstore/paths/... uri."""
        return self.workspace.datastore_folder(uri)

    def blob_path(self, name: str, container: str = CONTAINER) -> Path:
        return self.blobs.path(ACCOUNT, container, name)

    def processes(self) -> list[int]:
        """Pids of the job processes and inference servers this fake started that are still alive."""
        ws = self.workspace
        pids = [r.process.pid for r in ws.runs.values() if r.process is not None and r.process.poll() is None]
        pids += [s.pid() for s in ws.servers.values() if s.pid() is not None]
        return [p for p in pids if alive(p)]

    # --- HTTPS: ARM and blob storage -------------------------------------------------------------------------------
    def _record(self, method, raw_path, headers, body, host=None) -> Request:
        url = urlsplit(raw_path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        parsed = None
        if body and "json" in (headers.get("Content-Type") or "json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        request = Request(method, host or (headers.get("Host") or "").lower(), unquote(url.path), query,
                          query.get("api-version"), parsed, kept)
        with self._lock:
            self.requests.append(request)
        return request

    def _injected(self, request: Request):
        with self._lock:
            for injection in self._injections:
                if injection.method in ("*", request.method) and injection.path.search(request.path) and (
                        injection.host is None or injection.host.search(request.host)):
                    injection.times -= 1
                    if injection.times <= 0:
                        self._injections.remove(injection)
                    break
            else:
                return None
        request.injected = True
        body, headers = injection.body, dict(injection.headers)
        code = DEFAULT_CODES.get(injection.status, "Error")
        if body is None and injection.status >= 400:
            if ".blob." in request.host:
                return blob_error(injection.status, code, f"Injected {injection.status}.", headers)
            body = {"error": {"code": code, "message": f"Injected {injection.status} by the test."}}
        if isinstance(body, (dict, list)):
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        return injection.status, headers, body or b""

    def _handle(self, method, raw_path, headers, body):
        request = self._record(method, raw_path, headers, body)
        response = self._injected(request)
        if response is None:
            if request.host.split(":")[0].endswith(".blob.core.windows.net"):
                response = self._blob(request, headers, body)
            elif request.host.split(":")[0].endswith(".api.azureml.ms"):
                response = self._dataplane(request, headers)
            else:
                response = self._arm(request, headers)
        request.status = response[0]
        return response

    def _dataplane(self, request: Request, headers):
        """The region's api.azureml.ms: the workspace's discovery document and run history's run details."""
        if not (headers.get("Authorization") or "").startswith("Bearer ") and request.path != "/discovery":
            status, extra, body = error(401, "AuthenticationFailed", "The 'Authorization' header is missing.")
        elif request.method == "GET" and request.path == "/discovery":
            base = f"https://{request.host.split(':')[0]}"
            status, extra, body = 200, {}, {key: base for key in (
                "api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling",
                "modelmanagement", "pipelines", "studiometadata")}
        elif request.method == "GET" and RUN_DETAILS_PATH.match(request.path):
            status, extra, body = self._run_details(RUN_DETAILS_PATH.match(request.path).group("run"))
        else:
            status, extra, body = error(404, "NotFound", f"No route for {request.method} {request.path} in this fake.")
        extra = {**extra, "Content-Type": "application/json; charset=utf-8"}
        return status, extra, json.dumps(body).encode()

    def _run_details(self, run_id: str):
        ws = self.workspace
        with ws.lock:
            job = ws.jobs.get(run_id)
            if job is None:
                return error(404, "NotFound", f"Run {run_id} was not found.")
            props = job["properties"]
            details = {"runId": run_id, "status": props["status"], "target": props.get("computeId", "").rsplit("/", 1)[-1],
                       "startTimeUtc": props["properties"].get("StartTimeUtc"),
                       "endTimeUtc": props["properties"].get("EndTimeUtc"), "warnings": [], "tags": props.get("tags") or {},
                       "properties": {}, "logFiles": {}}
            if run_id in ws.run_errors:
                details["error"] = {"error": dict(ws.run_errors[run_id]), "time": now_iso()}
        return 200, {}, details

    def _blob(self, request: Request, headers, body):
        if "Authorization" not in headers and "sig" not in request.query:
            return blob_error(403, "NoAuthenticationInformation", "Server failed to authenticate the request.")
        account = request.host.split(".")[0]
        return self.blobs.handle(request.method, account, request.path, request.query, headers, body)

    def _arm(self, request: Request, headers):
        if not (headers.get("Authorization") or "").startswith("Bearer "):
            status, extra, body = error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' "
                                                                     "header is missing.")
        else:
            status, extra, body = self._route(request)
        extra = {**extra}
        if body is None:
            return status, extra, b""
        extra.setdefault("Content-Type", "application/json; charset=utf-8")
        return status, extra, json.dumps(body).encode()

    def _route(self, request: Request):
        ws = self.workspace
        ops = OPS_PATH.match(request.path)
        if ops:
            with ws.lock:
                op = ws.operations.get(ops.group("id"))
                if op is None:
                    return error(404, "NotFound", f"Operation {ops.group('id')} not found.")
                waiting = {"x-ms-retry-after-ms": str(self.poll_after_ms)}
                if ops.group("kind").lower() == "mfeoperationsstatus":
                    return 200, (waiting if op.status == "InProgress" else {}), op.body()
                if op.status == "InProgress":
                    return 202, {**waiting, "Location": f"https://{request.host}{request.path}?api-version="
                                                         f"{request.api_version}"}, None
                if op.status == "Failed":
                    return 400, {}, {"error": op.error}
                return 200, {}, None
        match = WS_PATH.match(request.path)
        if not match:
            return error(404, "ResourceNotFound", f"The resource '{request.path}' was not found (this fake serves "
                                                  f"workspace {WS} in resource group {RG} of subscription {SUB}).")
        rest = match.group("rest") or ""
        for method, pattern, handler, versions in COMPILED:
            found = pattern.match(rest)
            if method != request.method or not found:
                continue
            if versions is not None and request.api_version not in versions:
                return error(400, "InvalidApiVersionParameter",
                             f"The api-version '{request.api_version}' is invalid. The supported versions are "
                             f"'{', '.join(sorted(versions))}'.")
            with ws.lock:
                status, headers, body = getattr(ws, handler)(request, **found.groupdict())
            if headers.get("Azure-AsyncOperation"):
                headers = {**headers, "x-ms-retry-after-ms": str(self.poll_after_ms)}
            return status, headers, body
        return error(404, "NotFound", f"No route for {request.method} {rest or '/'} in this fake.")

    # --- plain HTTP: endpoint scoring URIs -------------------------------------------------------------------------
    def _handle_scoring(self, method, raw_path, headers, body):
        request = self._record(method, raw_path, headers, body, host=f"127.0.0.1:{self.scoring_port}")
        response = self._injected(request) or self._score(request, headers, body)
        request.status = response[0]
        return response

    def _score(self, request: Request, headers, body):
        def reply(status, message):
            return status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()

        match = re.fullmatch(r"/([^/]+)/(score|swagger\.json)", request.path)
        if not match or (match.group(2) == "score") != (request.method == "POST"):
            return reply(404, f"No such route: {request.method} {request.path}")
        with self.workspace.lock:
            target, problem = self.workspace.route(
                match.group(1), headers.get("Authorization") or "", headers.get("azureml-model-deployment"),
                lambda weights: self.random.choices(list(weights), [int(w) for w in weights.values()])[0])
        if problem:
            return reply(*problem)
        name, port, timeout = target
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout + 5)
        try:
            connection.request(request.method, "/score" if match.group(2) == "score" else "/swagger.json",
                               body=body, headers={"Content-Type": headers.get("Content-Type") or "application/json"})
            upstream = connection.getresponse()
            data = upstream.read()
        except OSError as exc:
            return reply(502, f"Deployment '{name}' did not answer: {exc}")
        finally:
            connection.close()
        out = {"Content-Type": upstream.getheader("Content-Type") or "application/json",
               "azureml-model-deployment": name}
        for header in ("x-ms-run-fn-exec-ms", "x-ms-request-id"):
            if upstream.getheader(header):
                out[header] = upstream.getheader(header)
        return upstream.status, out, data
