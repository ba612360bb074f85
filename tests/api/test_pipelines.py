"""The example pipelines stay true: each file is YAML, and every mlops-portal command in them is one the CLI takes,
with an example that exists."""
import re
import shlex
from pathlib import Path

import pytest
import yaml

from mlops_cli.main import parser
from mlopsportal.examples import get_example

PIPELINES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
FILES = sorted(PIPELINES.rglob("*.yml"))


def _commands(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
    return [line.strip().split(" > ")[0] for line in joined.splitlines() if line.strip().startswith("mlops-portal ")]


def test_there_are_azure_devops_and_github_pipelines():
    assert {f.parent.name for f in FILES} == {"azure-devops", "github-actions"} and len(FILES) == 4


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pipeline_is_yaml_and_its_commands_parse(path):
    text = path.read_text()
    assert isinstance(yaml.safe_load(text), dict)
    commands = _commands(text)
    assert commands, "a pipeline that does not call the portal"
    for command in commands:
        # Pipeline variables and $(...) become plain words for the parser.
        words = shlex.split(re.sub(r"\$\{\{[^}]*\}\}|\$\([^)]*\)", "X", command))[1:]
        args = parser().parse_args(words)
        if args.command == "train":
            assert get_example(args.example).name == args.example
        assert getattr(args, "wait", True) and getattr(args, "idempotency_key", "x"), command
