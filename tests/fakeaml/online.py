"""Online endpoints and deployments of the fake workspace, and the scoring router's view of them.

A mixin of Workspace (arm.py): the handlers use its state (`endpoints`, `deployments`, `servers`, `lock`) and its
`start_operation`. A deployment's PUT starts a real inference server (workloads.DeploymentServer); it is Creating
until the server answers GET / with 200, and Failed if the server dies first or never gets healthy.
"""
import re
import secrets
import threading
import time
import uuid

from . import spec
from .common import REGION, TENANT, TYPE, WS, WS_ID, error, not_found, now_iso, quantity, seconds, system_data
from .workloads import DeploymentServer, tail


class OnlineServing:
    # --- online endpoints ------------------------------------------------------------------------------------------
    BUSY = ("Creating", "Updating", "Deleting")

    def _check_traffic(self, endpoint: str, traffic: dict):
        unknown = sorted(set(traffic) - {d for e, d in self.deployments if e == endpoint})
        if unknown:
            return error(400, "BadArgument", f"Traffic for endpoint '{endpoint}' names deployment(s) that do not "
                                             f"exist: {', '.join(unknown)}.")
        total = sum(int(v) for v in traffic.values())
        if any(int(v) < 0 for v in traffic.values()) or total not in (0, 100):
            return error(400, "BadArgument", f"Traffic values must add up to 0 or 100, not {total}.")
        return None

    def endpoint_put(self, req, name):
        refused = spec.refused("endpoint", req.body)
        if refused:
            return refused
        body = req.body or {}
        props = dict(body.get("properties") or {})
        existing = self.endpoints.get(name)
        if existing is None:
            problem = self._check_new_endpoint_name(name)
            if problem:
                return problem
        if existing and existing["properties"]["provisioningState"] in self.BUSY:
            return error(409, "Conflict", f"An operation on endpoint '{name}' is already in progress "
                                          f"({existing['properties']['provisioningState']}).")
        compute = props.get("compute")
        if compute:
            compute_name = compute.rstrip("/").rsplit("/", 1)[-1]
            if self.COMPUTES.get(compute_name, {}).get("computeType") != "Kubernetes":
                return error(400, "BadArgument", f"Compute '{compute_name}' is not a Kubernetes compute attached "
                                                 f"to workspace '{WS}'.")
        if existing and (existing["properties"].get("compute") or None) != (compute or None):
            return error(400, "BadArgument", "The compute of an existing endpoint cannot be changed.")
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        problem = self._check_traffic(name, traffic) if traffic else None
        if problem:
            return problem
        if existing:
            resource = existing
            resource["properties"]["provisioningState"] = "Updating"
            for field in ("description", "properties"):
                if field in props:
                    resource["properties"][field] = props[field]
            resource["tags"] = body.get("tags") or {}
        else:
            resource = {
                "id": f"{WS_ID}/onlineEndpoints/{name}", "name": name, "type": f"{TYPE}/onlineEndpoints",
                "location": REGION, "kind": "K8S" if compute else "Managed", "tags": body.get("tags") or {},
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": TENANT},
                "properties": {
                    "authMode": props.get("authMode") or "Key", "compute": compute or None,
                    "description": props.get("description"), "properties": props.get("properties") or {},
                    "traffic": {}, "mirrorTraffic": {}, "publicNetworkAccess": "Enabled",
                    "scoringUri": f"http://127.0.0.1:{self.scoring_port}/{name}/score",
                    "swaggerUri": f"http://127.0.0.1:{self.scoring_port}/{name}/swagger.json",
                    "provisioningState": "Creating"},
                "systemData": system_data(time.time()),
                "_keys": {"primaryKey": secrets.token_urlsafe(24), "secondaryKey": secrets.token_urlsafe(24)},
            }
            self.endpoints[name] = resource

        def done():
            if "traffic" in props:
                resource["properties"]["traffic"] = traffic
            resource["properties"]["provisioningState"] = "Succeeded"
            resource["systemData"]["lastModifiedAt"] = now_iso()
            return "Succeeded"

        headers = self.start_operation(req, "endpoint", done, self._failer(resource))
        return (200 if existing else 201), headers, self._public(resource)

    ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")

    def _check_new_endpoint_name(self, name: str):
        """Azure's rules for a new endpoint's name: its form, unique in the region (other workspaces' endpoints
        count), and not reusable for a while after a delete."""
        if not self.ENDPOINT_NAME.match(name):
            return error(400, "BadArgument", f"Endpoint name '{name}' is invalid: 3 to 32 letters, digits and '-', "
                                             "starting with a letter and not ending with '-'.")
        if name in self.taken_in_region:
            return error(400, "BadArgument", f"An online endpoint named '{name}' already exists in region {REGION}; "
                                             "endpoint names are unique per region. Choose another name.")
        deleted = self.deleted_endpoints.get(name)
        if deleted is not None and time.time() - deleted < self.name_release_seconds:
            return error(409, "Conflict", f"Endpoint '{name}' was deleted moments ago and its name is still being "
                                          "released; try again in a few minutes.")
        return None

    @staticmethod
    def _failer(resource: dict, server=None):
        def fail(message):
            resource["properties"]["provisioningState"] = "Failed"
            if server is not None:
                threading.Thread(target=server.stop, daemon=True).start()
        return fail

    def endpoint_get(self, req, name):
        endpoint = self.endpoints.get(name)
        return (200, {}, self._public(endpoint)) if endpoint else not_found("Online endpoint", name)

    def endpoint_list(self, req):
        return 200, {}, {"value": [self._public(e) for e in self.endpoints.values()]}

    def endpoint_keys(self, req, name):
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return not_found("Online endpoint", name)
        if endpoint["properties"]["authMode"] != "Key":
            return error(400, "BadArgument", f"Endpoint '{name}' does not use key authentication.")
        return 200, {}, dict(endpoint["_keys"])

    def endpoint_regenerate_keys(self, req, name):
        refused = spec.refused("regenerate_keys", req.body or {})
        if refused:
            return refused
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return not_found("Online endpoint", name)
        which = "secondaryKey" if ((req.body or {}).get("keyType") or "").lower() == "secondary" else "primaryKey"
        wanted = (req.body or {}).get("keyValue")  # the SDK sends the *current* key here: that means "a new one"
        endpoint["_keys"][which] = wanted if wanted and wanted != endpoint["_keys"][which] else \
            secrets.token_urlsafe(24)
        return 202, self.start_operation(req, "keys"), None

    def endpoint_delete(self, req, name):
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return not_found("Online endpoint", name)
        endpoint["properties"]["provisioningState"] = "Deleting"
        for key in [k for k in self.servers if k[0] == name]:
            threading.Thread(target=self.servers[key].stop, daemon=True).start()

        def done():
            self.endpoints.pop(name, None)
            self.deleted_endpoints[name] = time.time()
            for key in [k for k in self.deployments if k[0] == name]:
                self.deployments.pop(key, None)
                self.servers.pop(key, None)
            return "Succeeded"

        return 202, self.start_operation(req, "delete", done, self._failer(endpoint)), None

    # --- online deployments ----------------------------------------------------------------------------------------
    def deployment_put(self, req, endpoint_name, name):
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            return not_found("Online endpoint", endpoint_name)
        if endpoint["properties"]["provisioningState"] == "Deleting":
            return error(409, "Conflict", f"Endpoint '{endpoint_name}' is being deleted.")
        refused = spec.refused("deployment", req.body)
        if refused:
            return refused
        body = req.body or {}
        props = dict(body.get("properties") or {})
        key = (endpoint_name, name)
        existing = self.deployments.get(key)
        if existing and existing["properties"]["provisioningState"] in self.BUSY:
            return error(409, "Conflict", f"An operation on deployment '{name}' is already in progress.")
        kind = props.get("endpointComputeType")
        wanted = "Kubernetes" if endpoint["properties"].get("compute") else "Managed"
        if kind != wanted:
            return error(400, "BadArgument", f"Endpoint '{endpoint_name}' takes {wanted} deployments, not {kind}.")
        problem = self._check_deployment(endpoint, name, kind, props)
        if problem:
            return problem
        script = (props.get("codeConfiguration") or {}).get("scoringScript")
        try:
            model = self.model_folder(props.get("model"))
            code = self.code_folder((props.get("codeConfiguration") or {}).get("codeId"))
        except (LookupError, ValueError) as exc:
            return error(400, "BadArgument", str(exc))
        if not script or not (code / script).is_file():
            return error(400, "BadArgument", f"Scoring script '{script}' is not in the code asset.")
        if not props.get("scaleSettings"):
            # The REST model: "If it is null or not provided, it defaults to TargetUtilizationScaleSettings for
            # KubernetesOnlineDeployment and to DefaultScaleSettings for ManagedOnlineDeployment."
            props["scaleSettings"] = {"scaleType": "TargetUtilization", "minInstances": 1, "maxInstances": 1,
                                      "targetUtilizationPercentage": 70, "pollingInterval": "PT1S"} \
                if kind == "Kubernetes" else {"scaleType": "Default"}
        props.setdefault("requestSettings", {})
        props["requestSettings"] = {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1,
                                    "maxQueueWait": "PT0.5S", **props["requestSettings"]}
        probe = {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S", "successThreshold": 1,
                 "failureThreshold": 30}
        props["livenessProbe"] = {**probe, **(props.get("livenessProbe") or {})}
        props["readinessProbe"] = {**probe, "failureThreshold": 3, **(props.get("readinessProbe") or {})}
        props.setdefault("appInsightsEnabled", False)
        props.setdefault("properties", {})
        props["provisioningState"] = "Updating" if existing else "Creating"
        resource = {
            "id": f"{WS_ID}/onlineEndpoints/{endpoint_name}/deployments/{name}", "name": name,
            "type": f"{TYPE}/onlineEndpoints/deployments", "location": REGION, "kind": kind,
            "tags": body.get("tags") or {}, "sku": body.get("sku") or {"name": "Default", "capacity": 1},
            "properties": props,
            "systemData": system_data(existing["_created"] if existing else time.time(), time.time()),
            "_created": existing["_created"] if existing else time.time(), "_started": time.time(), "_error": None,
        }
        self.deployments[key] = resource
        timeout_ms = int(seconds(props["requestSettings"]["requestTimeout"]) * 1000)
        old = self.servers.get(key)
        env = props.get("environmentVariables") or {}
        if old is None or old.stopped or (old.source_code, old.source_model, old.scoring_script, old.timeout_ms,
                                          old.env) != (code, model, script, timeout_ms, env):
            folder = self.root / "deployments" / endpoint_name / f"{name}-{uuid.uuid4().hex[:8]}"
            server = DeploymentServer(folder, self.free_port(), code, script, model, timeout_ms, env)
            self.servers[key] = server

            def replace():
                if old is not None:
                    old.stop()
                server.start()

            threading.Thread(target=replace, daemon=True).start()
        server = self.servers[key]

        def check():
            state = resource["properties"]["provisioningState"]
            return "Succeeded" if state == "Succeeded" else (resource["_error"] if state == "Failed" else None)

        headers = self.start_operation(req, "deployment", check, self._failer(resource, server), delay=0)
        return (200 if existing else 201), headers, self._public(resource)

    MAX_TIMEOUT_SECONDS = {"Managed": 180, "Kubernetes": 300}

    def _check_deployment(self, endpoint: dict, name: str, kind: str, props: dict):
        """What Azure ML refuses in a deployment's settings: request timeouts over the maximum, a Kubernetes
        instance type the cluster lacks, resources over the instance type's limits or requests over the limits."""
        timeout = seconds((props.get("requestSettings") or {}).get("requestTimeout") or "PT5S")
        if timeout > self.MAX_TIMEOUT_SECONDS[kind]:
            return error(400, "BadArgument", f"requestTimeout of {timeout:g} s is above the maximum of "
                                             f"{self.MAX_TIMEOUT_SECONDS[kind]} s for {kind} deployments.")
        if kind != "Kubernetes":
            return None
        compute = self.COMPUTES[endpoint["properties"]["compute"].rstrip("/").rsplit("/", 1)[-1]]["properties"]
        wanted = props.get("instanceType") or compute["defaultInstanceType"]
        instance_type = compute["instanceTypes"].get(wanted)
        if instance_type is None:
            return error(400, "BadArgument", f"Instance type '{wanted}' is not defined on the Kubernetes compute "
                                             f"(it has {', '.join(sorted(compute['instanceTypes']))}).")
        resources = props.get("containerResourceRequirements") or {}
        requests = resources.get("containerResourceRequests") or {}
        limits = resources.get("containerResourceLimits") or {}
        type_limits = instance_type["resources"]["limits"]
        for resource in ("cpu", "memory"):
            memory = resource == "memory"
            asked = {side: quantity(values.get(resource), memory) for side, values in (
                ("request", requests), ("limit", limits)) if values.get(resource) is not None}
            if any(value is None for value in asked.values()):
                return error(400, "BadArgument", f"Deployment '{name}': {resource} must be a Kubernetes quantity.")
            most = quantity(type_limits[resource], memory)
            for side, value in asked.items():
                if value > most:
                    return error(400, "BadArgument", f"Deployment '{name}': the {resource} {side} "
                                                     f"{(requests if side == 'request' else limits)[resource]} is "
                                                     f"above the limit of instance type '{wanted}' "
                                                     f"({type_limits[resource]}).")
            if "request" in asked and "limit" in asked and asked["request"] > asked["limit"]:
                return error(400, "BadArgument", f"Deployment '{name}': the {resource} request is above its limit.")
        return None

    def _tick_deployment(self, key, resource: dict) -> None:
        server = self.servers.get(key)
        if server is None or self.hold_deployments:
            return
        state = server.state()
        with self.lock:
            props = resource["properties"]
            if props["provisioningState"] not in ("Creating", "Updating"):
                return
            if state == "healthy":
                props["provisioningState"] = "Succeeded"
            elif state == "dead" or time.time() - resource["_started"] > self.deploy_timeout_seconds:
                props["provisioningState"] = "Failed"
                resource["_error"] = (
                    f"ResourceNotReady: User container has crashed or terminated. The inference server of deployment "
                    f"'{key[1]}' stopped or never became healthy; last log lines:\n{tail(server.log_path, 15)}")
                threading.Thread(target=server.stop, daemon=True).start()

    def deployment_get(self, req, endpoint_name, name):
        deployment = self.deployments.get((endpoint_name, name))
        return (200, {}, self._public(deployment)) if deployment else not_found("Deployment", name)

    def deployment_list(self, req, endpoint_name):
        if endpoint_name not in self.endpoints:
            return not_found("Online endpoint", endpoint_name)
        return 200, {}, {"value": [self._public(d) for (e, _), d in self.deployments.items() if e == endpoint_name]}

    def deployment_delete(self, req, endpoint_name, name):
        key = (endpoint_name, name)
        deployment = self.deployments.get(key)
        if deployment is None:
            return not_found("Deployment", name)
        share = int((self.endpoints[endpoint_name]["properties"].get("traffic") or {}).get(name, 0))
        if share > 0:
            return error(400, "BadArgument", f"Deployment '{name}' still receives {share}% of the traffic of "
                                             f"endpoint '{endpoint_name}'; set it to 0 before deleting it.")
        deployment["properties"]["provisioningState"] = "Deleting"
        server = self.servers.get(key)
        if server is not None:
            threading.Thread(target=server.stop, daemon=True).start()

        def done():
            self.deployments.pop(key, None)
            self.servers.pop(key, None)
            return "Succeeded"

        return 202, self.start_operation(req, "delete", done, self._failer(deployment)), None

    def deployment_logs(self, req, endpoint_name, name):
        refused = spec.refused("logs", req.body or {})
        if refused:
            return refused
        server = self.servers.get((endpoint_name, name))
        if (endpoint_name, name) not in self.deployments or server is None:
            return not_found("Deployment", name)
        lines = int((req.body or {}).get("tail") or 0)
        text = tail(server.log_path, 0)
        initializer = (req.body or {}).get("containerType") == "StorageInitializer"
        rows = [r for r in text.splitlines() if r.startswith("[fake storage initializer]") == initializer]
        return 200, {}, {"content": "\n".join(rows[-lines:] if lines > 0 else rows)}

    # --- the scoring router's view ---------------------------------------------------------------------------------
    def route(self, endpoint_name: str, auth: str, pinned: str | None, pick):
        """(deployment name, port) to serve a scoring request, or (status, message) when nothing can."""
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None or endpoint["properties"]["provisioningState"] == "Deleting":
            return None, (404, f"Endpoint '{endpoint_name}' not found.")
        keys = endpoint["_keys"].values()
        if not auth.startswith("Bearer ") or auth[7:].strip() not in keys:
            return None, (401, "Authentication failed: send 'Authorization: Bearer <endpoint key>'.")
        if pinned:
            if (endpoint_name, pinned) not in self.deployments:
                return None, (404, f"Deployment '{pinned}' not found on endpoint '{endpoint_name}'.")
            name = pinned
        else:
            weights = {d: w for d, w in (endpoint["properties"].get("traffic") or {}).items() if int(w) > 0}
            if not weights:
                return None, (404, "No valid deployments to route to. Please check that the endpoint has at least "
                                   "one deployment with positive weight values or use a deployment specific header "
                                   "to route.")
            name = pick(weights)
        deployment, server = self.deployments.get((endpoint_name, name)), self.servers.get((endpoint_name, name))
        if deployment is None or server is None or server.stopped or \
                deployment["properties"]["provisioningState"] not in ("Succeeded", "Updating"):
            return None, (503, f"Deployment '{name}' is not ready to serve requests.")
        return (name, server.port, seconds(deployment["properties"]["requestSettings"]["requestTimeout"])), None
