"""What the fake's parts share: the workspace's fixed names, the service's error shape, small helpers."""
import datetime
import re
import time

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-test"
WS = "ws-test"
REGION = "westeurope"
TENANT = "11111111-1111-1111-1111-111111111111"
ACCOUNT, CONTAINER, DATASTORE = "fakestore", "azureml-blobstore-fake", "workspaceblobstore"
PROVIDER = "Microsoft.MachineLearningServices"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{PROVIDER}/workspaces/{WS}"
TYPE = f"{PROVIDER}/workspaces"
DATASTORE_URI = re.compile(r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/[^/]+/)?"
                           r"workspaces/[^/]+/)?datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$")


def now_iso(ts: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def system_data(created: float, modified: float | None = None) -> dict:
    return {"createdAt": now_iso(created), "createdBy": "fake-user@example.com", "createdByType": "User",
            "lastModifiedAt": now_iso(modified or created), "lastModifiedBy": "fake-user@example.com",
            "lastModifiedByType": "User"}


def error(status: int, code: str, message: str):
    """The service's error body. A request Azure ML refuses as invalid says only "The request is invalid." at the top;
    the reason is in `details[]` (as the real service does, Azure/azure-sdk-for-python#35109)."""
    if status == 400 and code in ("BadArgument", "UserError"):
        return status, {}, {"error": {"code": "UserError", "message": "The request is invalid.",
                                      "details": [{"code": code, "message": message}],
                                      "innerError": {"code": code}}}
    return status, {}, {"error": {"code": code, "message": message}}


def not_found(kind: str, name: str):
    return error(404, "NotFound", f"{kind} '{name}' was not found in workspace '{WS}'.")


def quantity(text, memory: bool) -> float | None:
    """A Kubernetes quantity: CPU in cores ("100m", "2"), memory in bytes ("2Gi", "1G", "1073741824")."""
    units = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30,
             "Ti": 2 ** 40} if memory else {"": 1, "m": 1e-3}
    match = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)([A-Za-z]*)", str(text or "").strip())
    if not match or match.group(2) not in units:
        return None
    return float(match.group(1)) * units[match.group(2)]


def seconds(duration: str | None) -> float:
    """ISO-8601 duration like PT1M30S or PT0.5S -> seconds."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", duration or "")
    if not match:
        return 5.0
    days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + secs
