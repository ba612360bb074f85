"""Checksums and safe copies of artifact folders."""
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, with forward slashes
    size: int
    sha256: str


def folder_manifest(root: Path) -> list[FileEntry]:
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        entries.append(FileEntry(path.relative_to(root).as_posix(), path.stat().st_size, file_sha256(path)))
    return entries


def manifest_sha256(entries: list[FileEntry]) -> str:
    """One checksum for a folder: the hash of each file's path and hash, in path order."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def copy_folder_atomically(src: Path, dest: Path) -> None:
    """Copy src to dest so that dest is either absent or complete, even if this process dies half way."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging)
    if dest.exists():  # left by an attempt whose database write never committed
        shutil.rmtree(dest)
    os.replace(staging, dest)


def safe_join(root: Path, relative: str) -> Path:
    """root/relative, refusing anything that escapes root."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError("path escapes the artifact folder")
    return candidate
