"""Time and message size of the profile import's refusals of hostile YAML (issue #10: alias bombs refused in under
1 s with a response under 10 kB; before the bounded loader, 354 bytes of list aliases gave a 34 MB error in 2.7 s and
393 bytes of mapping aliases held a web thread for 62 s).

    .venv/bin/python benchmarks/bench_yaml_import.py

Prints, for each input, its size, the median and worst of 5 parses in milliseconds, and the message. Numbers, not
pass/fail."""
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlopsportal.settings")


def cases() -> dict[str, str]:
    lists = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)) + "computeType: AKS\n"
    maps = "computeType: AKS\na: &a {k0: 1, k1: 1}\n" + "".join(
        f"{c}: &{c} {{{', '.join(f'k{i}: *{p}' for i in range(10))}}}\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    return {
        "alias bomb, lists (6 x 10)": lists,
        "alias bomb, mappings (9 x 10)": maps,
        "4,000 unknown keys": "computeType: AKS\n" + "".join(f"k{i}: {i}\n" for i in range(4000)),
        "900 unknown keys (accepted)": "computeType: AKS\n" + "".join(f"k{i}: {i}\n" for i in range(900)),
        "5,000-digit integer": "computeType: AKS\nnumReplicas: " + "9" * 5000 + "\n",
        "numReplicas: .nan": "computeType: AKS\nnumReplicas: .nan\n",
        "1,200 nested lists": "computeType: AKS\nx: " + "[" * 1200 + "]" * 1200 + "\n",
        "1,200 nested mappings": "computeType: AKS\nx: " + "{a: " * 1200 + "1" + "}" * 1200 + "\n",
    }


def main() -> None:
    import django

    django.setup()
    from deployments.serving.profile_import import ProfileImportError, profile_from_yaml

    print(f"{'input':32} {'bytes':>7} {'p50 ms':>8} {'max ms':>8} {'msg chars':>9}  message")
    for name, text in cases().items():
        times, message = [], ""
        for _ in range(5):
            started = time.perf_counter()
            try:
                result = profile_from_yaml(text)
                message = f"imported; {len(result.not_imported)} lines of 'not imported'"
            except ProfileImportError as exc:
                message = str(exc)
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name:32} {len(text):7} {statistics.median(times):8.1f} {max(times):8.1f} {len(message):9}  "
              f"{message[:90]}")


if __name__ == "__main__":
    main()
