"""Training examples the portal can launch: each is a folder with an `example.json` manifest.

The manifest names the training script, its data file, the key metric and the parameters the script accepts, with
types and ranges; the launch form is built from it and validates against it.
"""
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings


class ExampleError(Exception):
    pass


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # "int", "float" or "choice"
    default: object
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    path: Path
    script: str
    data: str
    model_name: str
    key_metric: str
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    @property
    def data_path(self) -> Path:
        return self.path / self.data

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def code_files(self) -> list[Path]:
        """The files that make up the code snapshot: Python sources at the example's top level."""
        return sorted(p for p in self.path.glob("*.py") if p.is_file())

    def code_version(self) -> str:
        digest = hashlib.sha256()
        for path in self.code_files():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()


def _load(manifest: Path) -> Example:
    try:
        raw = json.loads(manifest.read_text())
        params = tuple(
            Parameter(
                name=name,
                type=spec["type"],
                default=spec["default"],
                help=spec.get("help", ""),
                min=spec.get("min"),
                max=spec.get("max"),
                choices=tuple(spec.get("choices", ())),
            )
            for name, spec in raw.get("parameters", {}).items()
        )
        example = Example(
            name=raw["name"],
            title=raw.get("title", raw["name"]),
            description=raw.get("description", ""),
            path=manifest.parent,
            script=raw["script"],
            data=raw["data"],
            model_name=raw.get("model_name", raw["name"]),
            key_metric=raw["key_metric"],
            parameters=params,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExampleError(f"{manifest}: invalid manifest ({exc})") from exc
    if not (example.path / example.script).is_file():
        raise ExampleError(f"{manifest}: training script {example.script} not found")
    return example


@lru_cache(maxsize=1)
def _catalog(dirs: tuple[str, ...]) -> dict[str, Example]:
    found: dict[str, Example] = {}
    for base in dirs:
        for manifest in sorted(Path(base).glob("*/example.json")):
            example = _load(manifest)
            found.setdefault(example.name, example)
    return found


def list_examples() -> list[Example]:
    return list(_catalog(tuple(str(d) for d in settings.MLOPS_EXAMPLES_DIRS)).values())


def get_example(name: str) -> Example:
    try:
        return _catalog(tuple(str(d) for d in settings.MLOPS_EXAMPLES_DIRS))[name]
    except KeyError:
        raise ExampleError(f"Unknown training example '{name}'.") from None
