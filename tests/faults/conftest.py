"""The fault suite's table: what was injected and whether the portal survived it, printed after the tests."""
from pathlib import Path

RESULTS: list[tuple[str, str, str]] = []  # (fault, outcome, detail)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    width = max(len(fault) for fault, _, _ in RESULTS)
    lines = [f"{'fault injected':<{width}}  outcome   detail", "-" * (width + 40)]
    lines += [f"{fault:<{width}}  {outcome:<8}  {detail}" for fault, outcome, detail in RESULTS]
    count = {kind: sum(outcome == kind for _, outcome, _ in RESULTS) for kind in ("survived", "FAILED", "not run")}
    lines.append(f"{count['survived']} survived, {count['FAILED']} failed, {count['not run']} not run")
    terminalreporter.section("fault suite")
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(__file__).resolve().parents[2] / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "faults.txt").write_text("\n".join(lines) + "\n")
