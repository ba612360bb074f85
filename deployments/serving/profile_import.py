"""Deployment profiles from YAML: Azure ML v1 deployment configs (AKS, ACI) and v2 online-deployment YAML.

Every field is either mapped onto the profile (the SDK v2 settings it stands for) or reported back in words, with
its line: nothing is dropped silently. Malformed YAML and wrong types are refused with the line at fault.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import yaml


class ProfileImportError(ValueError):
    pass


@dataclass
class ImportResult:
    source: str  # "Azure ML v1 AKS config", ...
    fields: dict = field(default_factory=dict)  # DeploymentProfile field -> value
    not_imported: list[str] = field(default_factory=list)  # what has no place in a v2 profile, and why
    defaults: list[str] = field(default_factory=list)  # settings the file leaves out, given the source's default


# A deployment config is a few dozen settings. These bounds refuse, before any expansion, what only an attack needs:
# aliases (354 bytes of nested aliases expand to millions of nodes), deep nesting, many nodes, long scalars.
MAX_DEPTH = 20
MAX_NODES = 2_000
MAX_SCALAR_CHARS = 2_000
MAX_REPORTED = 50  # lines of "not imported"; the rest are counted
EXCERPT_CHARS = 60


def excerpt(value) -> str:
    """A value as it is quoted in a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing at most MAX_NODES nodes MAX_DEPTH deep, with no aliases: it stops at the first
    node past a bound, so the work done is bounded whatever the input."""

    def __init__(self, stream):
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def _refuse(self, mark, why: str):
        raise ProfileImportError(f"Not accepted — line {mark.line + 1}, column {mark.column + 1}: {why}.")

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._refuse(self.peek_event().start_mark,
                         "YAML aliases (*name) are not accepted in a deployment config; write the values out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            self._refuse(event.start_mark, "YAML anchors (&name) are not accepted in a deployment config")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._refuse(event.start_mark, f"more than {MAX_NODES} values; a deployment config is far smaller")
        if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
            self._refuse(event.start_mark, f"a value longer than {MAX_SCALAR_CHARS} characters")
        if isinstance(event, yaml.ScalarEvent) and "\x00" in event.value:  # written "\0": no database stores it
            self._refuse(event.start_mark, "a NUL character (\\0) in a value")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._refuse(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        digits = node.value.replace("_", "").lstrip("+-")
        if len(digits) > 18:
            self._refuse(node.start_mark, f"the number {excerpt(node.value)} is far too large")
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _tree(text: str):
    """The YAML as plain values plus a line number for every key path. Composed once, within the bounds above."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # its reader refuses control characters at once
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileImportError(f"Not valid YAML — {where}{problem[:200]}.") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise ProfileImportError("The YAML must be a mapping of settings (key: value), not a list or a single value.")
    lines: dict[str, int] = {}

    def walk(n, prefix):
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                path = f"{prefix}.{key.value}" if prefix else str(key.value)
                lines[path] = key.start_mark.line + 1
                walk(value, path)

    walk(node, "")
    return data, lines


def yaml_tree(text: str):
    """Any configuration YAML, read within the same bounds: (its values, the line of every key path). Raises
    ProfileImportError with the line at fault."""
    return _tree(text)


class _Reader:
    def __init__(self, data: dict, lines: dict[str, int], result: ImportResult):
        self.data, self.lines, self.result = data, lines, result
        self.seen: set[str] = set()

    def at(self, path: str) -> str:
        return f"line {self.lines.get(path, '?')}"

    def get(self, path: str):
        value, walked = self.data, []
        for part in path.split("."):
            if walked and not isinstance(value, dict):
                where = ".".join(walked)
                raise ProfileImportError(f"{where} ({self.at(where)}) must be a mapping of settings, "
                                         f"not {excerpt(value)}.")
            if part not in value:
                return None
            value = value[part]
            walked.append(part)
        self.seen.add(path)
        return value

    def number(self, path: str, *, integer: bool = False, convert=None):
        value = self.get(path)
        if value is None:
            return None
        if convert is not None:
            value = convert(f"{path} ({self.at(path)})", value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileImportError(f"{path} ({self.at(path)}) must be a number, not {excerpt(value)}.")
        if not math.isfinite(value):
            raise ProfileImportError(f"{path} ({self.at(path)}) must be a number, not {excerpt(value)}.")
        if abs(value) > 1e9:
            raise ProfileImportError(f"{path} ({self.at(path)}): {excerpt(value)} is far out of range.")
        if integer and float(value) != int(value):
            raise ProfileImportError(f"{path} ({self.at(path)}) must be a whole number, not {excerpt(value)}.")
        return int(value) if integer else float(value)

    def boolean(self, path: str):
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ProfileImportError(f"{path} ({self.at(path)}) must be true or false, not {excerpt(value)}.")
        return value

    def set(self, name: str, value) -> None:
        if value is not None:
            self.result.fields[name] = value

    def report(self, path: str, why: str) -> None:
        if self.get(path) is not None:
            self.result.not_imported.append(f"{path} ({self.at(path)}): {why}")

    def report_rest(self, why: str) -> None:
        """Every leaf not read nor reported yet."""
        for path in sorted(self.lines, key=self.lines.get):
            if path in self.seen or any(s.startswith(path + ".") for s in self.seen):
                continue
            if any(path.startswith(s + ".") for s in self.seen):
                continue
            value = self.get(path)
            if isinstance(value, dict):
                self.seen.discard(path)
                continue
            shown = path if len(path) <= 80 else path[:79] + "…"
            self.result.not_imported.append(f"{shown} ({self.at(path)}): {why}")


def _cpu(path, value):
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(m?)\s*", value)
        if not match:
            raise ProfileImportError(f"{path}: {excerpt(value)} is not a CPU amount (e.g. 0.5 or \"500m\").")
        return float(match.group(1)) / (1000 if match.group(2) else 1)
    return value


MEMORY_BYTES = {"": 1, "k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "Ki": 1024,
                "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def _memory_in_gb(*, bare_unit: str):
    """A converter of memory amounts to GB (10^9 bytes, the profile's unit). Kubernetes units are honoured (1Gi is
    1.07 GB); a bare number is in `bare_unit`: GB for v1's memoryInGB, bytes for v2 (a Kubernetes quantity)."""
    def convert(path, value):
        if isinstance(value, bool):
            return value  # refused by number()
        text = str(value).strip() if isinstance(value, (str, int, float)) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)\s*([kKMGT]i?)?", text or "")
        if not match or (match.group(2) or "") not in MEMORY_BYTES:
            if isinstance(value, str):
                raise ProfileImportError(f"{path}: {excerpt(value)} is not a memory amount (e.g. \"1G\", \"1Gi\" or "
                                         f"\"512Mi\").")
            return value  # refused by number() with its own words
        number, unit = float(match.group(1)), match.group(2) or ""
        if not unit:
            return number if bare_unit == "GB" else round(number / 10 ** 9, 2)
        return round(number * MEMORY_BYTES[unit] / 10 ** 9, 2)
    return convert


# Azure ML v1's defaults for an AKS web service (azureml-core AksWebservice.deploy_configuration): what a config that
# leaves a setting out gets. Autoscale is on unless numReplicas is given.
V1_AKS_DEFAULTS = {
    "min_instances": ("autoScaler.minReplicas", 1), "max_instances": ("autoScaler.maxReplicas", 10),
    "target_utilization": ("autoScaler.targetUtilization", 70),
    "polling_interval_seconds": ("autoScaler.refreshPeriodInSeconds", 1),
    "cpu_request": ("containerResourceRequirements.cpu", 0.1),
    "memory_request_gb": ("containerResourceRequirements.memoryInGB", 0.5),
    "request_timeout_ms": ("scoringTimeoutMs", 60_000),
    "max_concurrent_requests_per_instance": ("maxConcurrentRequestsPerContainer", 1),
    "max_queue_wait_ms": ("maxQueueWaitMs", 500), "auth_enabled": ("authEnabled", True),
}
V1_ACI_DEFAULTS = {"cpu_request": ("containerResourceRequirements.cpu", 0.1),
                   "memory_request_gb": ("containerResourceRequirements.memoryInGB", 0.5),
                   "auth_enabled": ("authEnabled", False)}


def _v1(reader: _Reader, kind: str) -> None:
    r = reader
    replicas = r.number("numReplicas", integer=True)
    autoscale = r.boolean("autoScaler.autoscaleEnabled")
    if autoscale is None and kind == "AKS":
        autoscale = replicas is None  # v1: autoscale unless a fixed replica count is given
        r.result.defaults.append(f"autoScaler.autoscaleEnabled: {str(autoscale).lower()} "
                                 f"(v1's default {'with' if replicas is not None else 'without'} numReplicas)")
    r.set("autoscale_enabled", autoscale)
    r.set("min_instances", r.number("autoScaler.minReplicas", integer=True))
    r.set("max_instances", r.number("autoScaler.maxReplicas", integer=True))
    r.set("target_utilization", r.number("autoScaler.targetUtilization", integer=True))
    r.set("polling_interval_seconds", r.number("autoScaler.refreshPeriodInSeconds", integer=True))
    r.set("cpu_request", r.number("containerResourceRequirements.cpu"))
    r.set("memory_request_gb", r.number("containerResourceRequirements.memoryInGB",
                                        convert=_memory_in_gb(bare_unit="GB")))
    r.set("auth_enabled", r.boolean("authEnabled"))
    r.set("request_timeout_ms", r.number("scoringTimeoutMs", integer=True))
    r.set("max_concurrent_requests_per_instance", r.number("maxConcurrentRequestsPerContainer", integer=True))
    r.set("max_queue_wait_ms", r.number("maxQueueWaitMs", integer=True))
    for name, (path, default) in (V1_AKS_DEFAULTS if kind == "AKS" else V1_ACI_DEFAULTS).items():
        if name in ("min_instances", "max_instances", "target_utilization", "polling_interval_seconds") \
                and not autoscale:
            continue
        if name not in r.result.fields:
            r.set(name, default)
            r.result.defaults.append(f"{path}: {str(default).lower() if isinstance(default, bool) else default} "
                                     f"(v1's default)")
    if replicas is not None:
        r.set("instance_count", replicas)
    elif autoscale:
        r.set("instance_count", r.result.fields["min_instances"])  # v2 starts an autoscaled deployment at its minimum
    r.get("computeType")
    r.report("appInsightsEnabled", "a per-deployment v2 setting (app_insights_enabled), not part of a profile")
    if kind == "AKS":
        r.report("sslEnabled", "on Kubernetes endpoints TLS is the Azure ML extension's setting (sslCertPemFile, "
                               "allowInsecureConnections), not the deployment's")
    else:
        r.report("sslEnabled", "no v2 counterpart: managed online endpoints always serve HTTPS")
    r.report("tokenAuthEnabled", "v2 endpoint auth_mode aml_token; profiles support key auth on or off")
    r.report_rest(f"not a setting the portal maps from a v1 {kind} config")


def _v2(reader: _Reader) -> None:
    r = reader
    r.set("instance_count", r.number("instance_count", integer=True))
    scale_type = r.get("scale_settings.type")
    if scale_type is not None:
        if scale_type not in ("default", "target_utilization"):
            raise ProfileImportError(f"scale_settings.type ({r.at('scale_settings.type')}) must be default or "
                                     f"target_utilization, not {excerpt(scale_type)}.")
        r.set("autoscale_enabled", scale_type == "target_utilization")
    r.set("min_instances", r.number("scale_settings.min_instances", integer=True))
    r.set("max_instances", r.number("scale_settings.max_instances", integer=True))
    r.set("target_utilization", r.number("scale_settings.target_utilization_percentage", integer=True))
    r.set("polling_interval_seconds", r.number("scale_settings.polling_interval", integer=True))
    r.set("request_timeout_ms", r.number("request_settings.request_timeout_ms", integer=True))
    r.set("max_concurrent_requests_per_instance",
          r.number("request_settings.max_concurrent_requests_per_instance", integer=True))
    r.set("max_queue_wait_ms", r.number("request_settings.max_queue_wait_ms", integer=True))
    r.set("cpu_request", r.number("resources.requests.cpu", convert=_cpu))
    r.set("memory_request_gb", r.number("resources.requests.memory", convert=_memory_in_gb(bare_unit="bytes")))
    for key in ("$schema", "name", "endpoint_name", "model", "code_configuration", "environment", "description"):
        r.report(key, "belongs to a deployment, not to a profile (the promotion sets it)")
    instance_type = r.get("instance_type")
    if instance_type is not None:
        if not isinstance(instance_type, str):
            raise ProfileImportError(f"instance_type ({r.at('instance_type')}) must be a name, not "
                                     f"{excerpt(instance_type)}.")
        if instance_type.lower().startswith("standard_"):
            r.report("instance_type", "a managed endpoint's VM size; managed staging deployments use the "
                                      "workspace's VM size")
        else:
            r.set("kubernetes_instance_type", instance_type)  # a Kubernetes instance type of the cluster
    r.report("resources.limits", "the portal sets limits equal to the requests, within the instance type's limits")
    r.report_rest("not a setting the portal maps into a profile")


def profile_from_yaml(text: str) -> ImportResult:
    data, lines = _tree(text)
    reader = _Reader(data, lines, ImportResult(source=""))
    compute_type = str(data.get("computeType", "")).upper()
    if compute_type in ("AKS", "ACI"):
        reader.result.source = f"Azure ML v1 {compute_type} deployment config"
        _v1(reader, compute_type)
    elif compute_type:
        raise ProfileImportError(f"computeType ({reader.at('computeType')}) must be AKS or ACI, not "
                                 f"{excerpt(data['computeType'])}.")
    elif {"scale_settings", "request_settings", "resources", "instance_count", "instance_type"} & set(data):
        reader.result.source = "Azure ML v2 online deployment YAML"
        _v2(reader)
    else:
        raise ProfileImportError("Not a deployment config: expected a v1 config with computeType (AKS or ACI) or a "
                                 "v2 online deployment with scale_settings, request_settings or resources.")
    reader.result.not_imported.sort(key=lambda line: int(re.search(r"\(line (\d+)\)", line).group(1)))
    if len(reader.result.not_imported) > MAX_REPORTED:
        more = len(reader.result.not_imported) - MAX_REPORTED
        reader.result.not_imported[MAX_REPORTED:] = [f"… and {more} more settings the portal does not map"]
    return reader.result
