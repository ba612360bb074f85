"""The fake storage account's Blob REST API, on a folder: <root>/<account>/<container>/<blob name as a path>.

Only what azure-storage-blob does for azure-ai-ml: put a block blob (whole, or staged blocks and a block list),
read properties (HEAD), set metadata, download (with x-ms-range / Range), list a container (prefix, delimiter,
include=metadata), create and delete. Signatures (SharedKey or SAS) are not checked. Blob metadata lives in memory;
files written into the folder by others (a job's outputs) are blobs too, with no metadata.
"""
import base64
import email.utils
import hashlib
import re
import threading
import uuid
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

XML = "application/xml"


def _error(status: int, code: str, message: str, extra_headers: dict | None = None):
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
            f"RequestId:{uuid.uuid4()}</Message></Error>").encode()
    headers = {"Content-Type": XML, "x-ms-error-code": code, **(extra_headers or {})}
    return status, headers, body


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.metadata: dict[tuple[str, str, str], dict[str, str]] = {}
        self.content_types: dict[tuple[str, str, str], str] = {}
        self.blocks: dict[tuple[str, str, str], dict[str, bytes]] = {}
        self.lock = threading.RLock()

    # --- paths -----------------------------------------------------------------------------------------------------
    def container_dir(self, account: str, container: str) -> Path:
        return self.root / account / container

    def path(self, account: str, container: str, blob: str) -> Path:
        target = (self.container_dir(account, container) / blob).resolve()
        if not str(target).startswith(str(self.container_dir(account, container).resolve())):
            raise ValueError(f"blob name escapes its container: {blob}")
        return target

    # --- request dispatch ------------------------------------------------------------------------------------------
    def handle(self, method: str, account: str, path: str, query: dict, headers, body: bytes):
        """Returns (status, headers, body) for one request to https://<account>.blob.core.windows.net<path>."""
        parts = path.lstrip("/").split("/", 1)
        container = parts[0]
        blob = parts[1] if len(parts) > 1 else ""
        if not container:
            return _error(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        if not blob:
            return self._container(method, account, container, query)
        key = (account, container, blob)
        comp = query.get("comp")
        if method == "PUT" and comp == "block":
            with self.lock:
                self.blocks.setdefault(key, {})[query["blockid"]] = body
            return 201, {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}, b""
        if method == "PUT" and comp == "blocklist":
            ids = [el.text or "" for el in ElementTree.fromstring(body) if el.tag in ("Latest", "Uncommitted", "Committed")]
            with self.lock:
                staged = self.blocks.pop(key, {})
            missing = [i for i in ids if i not in staged]
            if missing:
                return _error(400, "InvalidBlockList", "The specified block list is invalid.")
            return self._write(key, b"".join(staged[i] for i in ids), headers)
        if method == "PUT" and comp == "metadata":
            if not self.path(*key).is_file():
                return _error(404, "BlobNotFound", "The specified blob does not exist.")
            with self.lock:
                self.metadata[key] = _meta_from(headers)
            return 200, self._etag_headers(self.path(*key)), b""
        if method == "PUT" and comp is None:
            if headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
                return _error(400, "InvalidHeaderValue", "Only block blobs are supported by this fake.")
            if headers.get("If-None-Match") == "*" and self.path(*key).is_file():
                return _error(409, "BlobAlreadyExists", "The specified blob already exists.")
            return self._write(key, body, headers)
        if method in ("GET", "HEAD") and comp in (None, "metadata"):
            return self._read(method, key, headers)
        if method == "DELETE":
            target = self.path(*key)
            if not target.is_file():
                return _error(404, "BlobNotFound", "The specified blob does not exist.")
            target.unlink()
            with self.lock:
                self.metadata.pop(key, None)
            return 202, {}, b""
        return _error(400, "UnsupportedHttpVerb", f"This fake does not support {method} comp={comp}.")

    # --- blobs -----------------------------------------------------------------------------------------------------
    def _etag_headers(self, target: Path) -> dict:
        stat = target.stat()
        return {"ETag": f'"0x{stat.st_mtime_ns:X}"', "Last-Modified": _http_date(stat.st_mtime)}

    def _write(self, key, data: bytes, headers):
        target = self.path(*key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        with self.lock:
            self.metadata[key] = _meta_from(headers)
            self.content_types[key] = headers.get("x-ms-blob-content-type") or "application/octet-stream"
        return 201, {**self._etag_headers(target), "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                     "x-ms-request-server-encrypted": "true"}, b""

    def _properties(self, key, target: Path) -> dict:
        with self.lock:
            meta = dict(self.metadata.get(key, {}))
            content_type = self.content_types.get(key, "application/octet-stream")
        headers = {**self._etag_headers(target), "x-ms-blob-type": "BlockBlob", "Content-Type": content_type,
                   "Accept-Ranges": "bytes", "x-ms-creation-time": _http_date(target.stat().st_ctime),
                   "x-ms-lease-state": "available", "x-ms-lease-status": "unlocked", "x-ms-server-encrypted": "true"}
        headers.update({f"x-ms-meta-{k}": v for k, v in meta.items()})
        return headers

    def _read(self, method: str, key, headers):
        target = self.path(*key)
        if not target.is_file():
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        data = target.read_bytes()
        props = self._properties(key, target)
        wanted = headers.get("x-ms-range") or headers.get("Range")
        if not wanted:
            return 200, {**props, "Content-Length": str(len(data))}, (b"" if method == "HEAD" else data)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if not match:
            return _error(400, "InvalidRange", f"Unsupported range {wanted}.")
        start = int(match.group(1))
        if start >= len(data):
            return _error(416, "InvalidRange", "The range specified is invalid for the current size of the resource.",
                          {"Content-Range": f"bytes */{len(data)}"})
        end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
        chunk = data[start:end + 1]
        props.update({"Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(len(chunk))})
        return 206, props, (b"" if method == "HEAD" else chunk)

    # --- containers ------------------------------------------------------------------------------------------------
    def _container(self, method: str, account: str, container: str, query: dict):
        folder = self.container_dir(account, container)
        if query.get("restype") != "container":
            return _error(400, "InvalidQueryParameterValue", "restype=container is required.")
        if method == "PUT":
            if folder.is_dir():
                return _error(409, "ContainerAlreadyExists", "The specified container already exists.")
            folder.mkdir(parents=True)
            return 201, {"ETag": '"0x1"', "Last-Modified": _http_date(folder.stat().st_mtime)}, b""
        if method in ("GET", "HEAD") and query.get("comp") == "list":
            return 200, {"Content-Type": XML}, self._list(account, container, query)
        if method in ("GET", "HEAD"):
            if not folder.is_dir():
                return _error(404, "ContainerNotFound", "The specified container does not exist.")
            return 200, {"ETag": '"0x1"', "Last-Modified": _http_date(folder.stat().st_mtime)}, b""
        return _error(400, "UnsupportedHttpVerb", f"This fake does not support {method} on containers.")

    def names(self, account: str, container: str, prefix: str = "") -> list[str]:
        folder = self.container_dir(account, container)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                name = path.relative_to(folder).as_posix()
                if name.startswith(prefix):
                    found.append(name)
        return sorted(found)

    def _list(self, account: str, container: str, query: dict) -> bytes:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter")
        include_meta = "metadata" in (query.get("include") or "")
        blobs, prefixes = [], []
        for name in self.names(account, container, prefix):
            if delimiter and delimiter in name[len(prefix):]:
                sub = name[:len(prefix) + name[len(prefix):].index(delimiter) + len(delimiter)]
                if sub not in prefixes:
                    prefixes.append(sub)
                continue
            key = (account, container, name)
            target = self.path(*key)
            props = self._properties(key, target)
            meta = ""
            if include_meta:
                meta = "<Metadata>" + "".join(f"<{k[10:]}>{escape(v)}</{k[10:]}>" for k, v in props.items()
                                              if k.startswith("x-ms-meta-")) + "</Metadata>"
            blobs.append(
                f"<Blob><Name>{escape(name)}</Name><Properties><Creation-Time>{props['x-ms-creation-time']}"
                f"</Creation-Time><Last-Modified>{props['Last-Modified']}</Last-Modified><Etag>{props['ETag']}</Etag>"
                f"<Content-Length>{target.stat().st_size}</Content-Length><Content-Type>{props['Content-Type']}"
                f"</Content-Type><BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus><LeaseState>"
                f"available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>{meta}</Blob>")
        items = "".join(blobs) + "".join(f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in prefixes)
        return (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://{account}.blob.'
                f'core.windows.net/" ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
                + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
                + f"<Blobs>{items}</Blobs><NextMarker /></EnumerationResults>").encode()


def _meta_from(headers) -> dict[str, str]:
    return {k[len("x-ms-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}
