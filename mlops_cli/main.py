"""mlops-portal: train, promote, roll back and ask for status from a pipeline.

Everything it does goes through the portal's API with a token (MLOPS_PORTAL_TOKEN), so the portal's rules apply:
the role's permissions, approval by someone else, production only through promotion and rollback. It prints the
result as JSON on stdout, progress on stderr (when stderr is a terminal, or with --progress), and exits with a code
a pipeline can branch on (EXIT below)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .client import Portal, PortalError

EXIT = {"succeeded": 0, "failed": 1, "rejected": 3, "canceled": 4, "timed out": 5, "refused": 6, "unreachable": 7}
EXIT_HELP = ("exit codes: 0 succeeded, 1 failed, 2 wrong arguments, 3 rejected, 4 canceled, 5 timed out waiting "
             "(the work goes on in the portal), 6 refused by the portal (bad input, role, state), 7 portal "
             "unreachable or token refused")
RUN_DONE = {"succeeded", "failed", "canceled"}
PROMOTION_DONE = {"succeeded", "failed", "rejected", "canceled"}


class Progress:
    def __init__(self, enabled: bool):
        self.enabled, self.start, self.last = enabled, time.monotonic(), ""

    def say(self, text: str) -> None:
        if self.enabled and text != self.last:
            print(f"[{time.monotonic() - self.start:5.0f}s] {text}", file=sys.stderr, flush=True)
        self.last = text


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"mlops-portal: --param takes name=value, not {pair!r}")
        params[name] = _value(value)
    return params


def _wait(fetch, done, *, timeout: float, poll: float, progress: Progress, describe) -> tuple[dict, bool]:
    deadline = time.monotonic() + timeout
    while True:
        current = fetch()
        progress.say(describe(current))
        if done(current):
            return current, True
        if time.monotonic() >= deadline:
            return current, False
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())) or poll)


def _print(result: dict) -> None:
    print(json.dumps(result, indent=2, default=str))


def cmd_train(portal: Portal, args, progress: Progress) -> int:
    body = {"example": args.example, "params": _params(args.param), "timeout_minutes": args.timeout_minutes}
    for name in ("experiment_name", "compute_target", "register_as"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    run = portal.post("/runs/", body, idempotency_key=args.idempotency_key)
    progress.say(f"launched training run {run['id']} ({run['example']})")
    if not args.wait:
        _print({"outcome": run["status"], "run": run})
        return EXIT["succeeded"]

    def registered(current: dict) -> bool:
        if current["status"] not in RUN_DONE:
            return False
        return current["status"] != "succeeded" or not args.register_as or bool(
            current["versions"] or current["registration_error"])

    run, finished = _wait(lambda: portal.get(f"/runs/{run['id']}/", log_lines=0), registered, timeout=args.timeout,
                          poll=args.poll, progress=progress,
                          describe=lambda r: f"run {r['id']}: {r['status']}"
                          + (f", registered {', '.join(r['versions'])}" if r["versions"] else ""))
    version = next((v for v in run["versions"] if v.split(":")[0] == args.register_as), None)
    if not finished:
        outcome = "timed out"
    elif run["status"] != "succeeded":
        outcome = run["status"]
    elif args.register_as and not version:
        outcome = "failed"
    else:
        outcome = "succeeded"
    reason = run["error"] or run["registration_error"]
    if outcome != "succeeded":
        print(f"mlops-portal: training run {run['id']} {outcome}" + (f": {reason}" if reason else ""),
              file=sys.stderr)
    _print({"outcome": outcome, "run": run, "version": version})
    return EXIT[outcome]


def _step_now(promotion: dict) -> str:
    steps = promotion.get("steps", [])
    current = next((s for s in steps if s["status"] in ("running", "waiting", "pending")), None)
    where = f"{current['label']} ({current['status']})" if current else ""
    state = {"awaiting": "awaiting approval by someone other than the requester"}.get(promotion["state"],
                                                                                    promotion["state"])
    return f"promotion {promotion['id']}: {state}" + (f" — step {current['position'] + 1}/{len(steps)}: {where}"
                                                      if current and promotion["state"] == "running" else "")


def _promotion_reason(promotion: dict) -> str:
    if promotion["state"] == "rejected":
        return f"rejected by {promotion['decided_by']}: {promotion['decision_comment']}"
    failed = [s for s in promotion.get("steps", []) if s["status"] == "failed"]
    step = f" (at {failed[0]['label']}: {failed[0]['detail']})" if failed and failed[0]["detail"] else ""
    return (promotion.get("failure_reason") or promotion["state"]) + step


def cmd_promote(portal: Portal, args, progress: Progress) -> int:
    body = {"version": args.version, "production_endpoint": args.to, "reason": args.reason}
    if args.staging:
        body["staging_endpoint"] = args.staging
    if args.stress_profile:
        body["stress_profile"] = args.stress_profile
    promotion = portal.post("/promotions/", body, idempotency_key=args.idempotency_key)
    progress.say(f"started promotion {promotion['id']}: {args.version} to {args.to}")
    if args.wait:
        promotion, finished = _wait(lambda: portal.get(f"/promotions/{promotion['id']}/"),
                                    lambda p: p["state"] in PROMOTION_DONE, timeout=args.timeout, poll=args.poll,
                                    progress=progress, describe=_step_now)
        outcome = promotion["state"] if finished else "timed out"
    else:
        outcome = promotion["state"] if promotion["state"] in PROMOTION_DONE else "succeeded"
    if outcome not in ("succeeded",):
        why = _promotion_reason(promotion) if outcome != "timed out" else (
            f"still {promotion['state']} after {args.timeout:g} s; it goes on in the portal")
        print(f"mlops-portal: promotion {promotion['id']} {outcome}: {why}", file=sys.stderr)
    _print({"outcome": outcome if args.wait else promotion["state"], "promotion": promotion})
    return EXIT[outcome]


def cmd_decide(portal: Portal, args, progress: Progress) -> int:
    promotion = portal.post(f"/promotions/{args.promotion}/decision/",
                            {"decision": args.decision, "comment": args.comment})
    progress.say(_step_now(promotion))
    _print({"outcome": promotion["state"], "promotion": promotion})
    return EXIT["succeeded"]


def cmd_rollback(portal: Portal, args, progress: Progress) -> int:
    endpoint = portal.post(f"/endpoints/{args.endpoint}/rollback/", {"reason": args.reason},
                           idempotency_key=args.idempotency_key)
    serving = ", ".join(f"{d['version']} ({d['name']}) {d['traffic']}%" for d in endpoint["deployments"])
    progress.say(f"rolled back {args.endpoint}: {serving}")
    _print({"outcome": "succeeded", "endpoint": endpoint})
    return EXIT["succeeded"]


def cmd_status(portal: Portal, args, progress: Progress) -> int:
    if args.kind == "run":
        _print(portal.get(f"/runs/{args.id}/", log_lines=args.log_lines))
    elif args.kind == "promotion":
        _print(portal.get(f"/promotions/{args.id}/"))
    elif args.kind == "endpoint":
        _print(portal.get(f"/endpoints/{args.id}/"))
    else:
        endpoints = portal.get("/endpoints/", page_size=200)["results"]
        promotions = portal.get("/promotions/", page_size=20)["results"]
        _print({"endpoints": [{"name": e["name"], "stage": e["stage"],
                               "serving": {d["name"]: {"version": d["version"], "traffic": d["traffic"],
                                                       "status": d["status"]} for d in e["deployments"]}}
                              for e in endpoints],
                "active_promotions": [p for p in promotions if p["state"] not in PROMOTION_DONE]})
    return EXIT["succeeded"]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mlops-portal", description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    top.add_argument("--url", default=os.environ.get("MLOPS_PORTAL_URL", "http://127.0.0.1:8000"),
                     help="the portal (default: $MLOPS_PORTAL_URL or http://127.0.0.1:8000)")
    top.add_argument("--token", default=os.environ.get("MLOPS_PORTAL_TOKEN", ""),
                     help="an API token (default: $MLOPS_PORTAL_TOKEN; better there than on a command line)")
    top.add_argument("--ca-bundle", default=os.environ.get("REQUESTS_CA_BUNDLE", ""),
                     help="CA certificates for a portal behind a private CA")
    output = argparse.ArgumentParser(add_help=False)  # also taken after the command: "promote ... --progress"
    for where, default in ((top, False), (output, argparse.SUPPRESS)):
        shown = where.add_mutually_exclusive_group()
        shown.add_argument("--progress", action="store_true", default=default,
                           help="progress on stderr even off a terminal")
        shown.add_argument("--quiet", action="store_true", default=default, help="no progress")
    subparsers = top.add_subparsers(dest="command", required=True)

    class Commands:
        @staticmethod
        def add_parser(name, **kwargs):
            return subparsers.add_parser(name, parents=[output], **kwargs)

    commands = Commands()

    def waiting(command, default_timeout: float):
        command.add_argument("--wait", action="store_true", help="wait until it ends; the exit code says how")
        command.add_argument("--timeout", type=float, default=default_timeout,
                             help=f"seconds to wait (default {default_timeout:g}); then exit 5")
        command.add_argument("--poll", type=float, default=5, help="seconds between checks (default 5)")

    def idempotent(command):
        command.add_argument("--idempotency-key", default="",
                             help="the same key again starts nothing new (e.g. the pipeline's run id)")

    train = commands.add_parser("train", help="launch a training run", epilog=EXIT_HELP)
    train.add_argument("--example", required=True, help="the training example, e.g. titanic")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter of the example (repeat); the value is read as JSON when it can be")
    train.add_argument("--register-as", default="", help="register the output as the next version of this model")
    train.add_argument("--experiment-name", default="")
    train.add_argument("--compute-target", default="")
    train.add_argument("--timeout-minutes", type=int, default=30, help="the run is stopped after this long")
    waiting(train, 3600)
    idempotent(train)
    train.set_defaults(handler=cmd_train)

    promote = commands.add_parser("promote", help="promote model:version to a production endpoint",
                                  epilog=EXIT_HELP)
    promote.add_argument("version", help="model:version, e.g. titanic:3")
    promote.add_argument("--to", required=True, help="the production endpoint")
    promote.add_argument("--staging", default="", help="the staging endpoint (default: the only one)")
    promote.add_argument("--stress-profile", default="", help="default: the model's only one")
    promote.add_argument("--reason", required=True, help="why; approvers read it")
    waiting(promote, 7200)
    idempotent(promote)
    promote.set_defaults(handler=cmd_promote)

    decide = commands.add_parser("decide", help="approve or reject a promotion (not your own)", epilog=EXIT_HELP)
    decide.add_argument("promotion", type=int)
    decide.add_argument("decision", choices=["approve", "reject"])
    decide.add_argument("--comment", required=True)
    decide.set_defaults(handler=cmd_decide)

    rollback = commands.add_parser("rollback", help="put production back on the version served before",
                                   epilog=EXIT_HELP)
    rollback.add_argument("endpoint")
    rollback.add_argument("--reason", required=True)
    idempotent(rollback)
    rollback.set_defaults(handler=cmd_rollback)

    status = commands.add_parser("status", help="what serves where, or one run, promotion or endpoint",
                                 epilog=EXIT_HELP)
    status.add_argument("kind", nargs="?", choices=["run", "promotion", "endpoint"])
    status.add_argument("id", nargs="?")
    status.add_argument("--log-lines", type=int, default=50, help="of a run's log")
    status.set_defaults(handler=cmd_status)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "status" and bool(args.kind) != bool(args.id):
        parser().error("status takes a kind and an id (status promotion 7), or neither")
    if not args.token:
        print("mlops-portal: no token: set MLOPS_PORTAL_TOKEN (make one under Settings → API tokens)",
              file=sys.stderr)
        return EXIT["unreachable"]
    progress = Progress(not args.quiet and (args.progress or sys.stderr.isatty()))
    portal = Portal(args.url, args.token, verify=args.ca_bundle or True)
    try:
        return args.handler(portal, args, progress)
    except PortalError as exc:
        print(f"mlops-portal: {exc}", file=sys.stderr)
        _print({"outcome": "refused" if exc.status and 400 <= exc.status < 500 and exc.status != 401
                else "unreachable", "error": str(exc), "problem": exc.problem})
        return EXIT["refused"] if exc.status and 400 <= exc.status < 500 and exc.status != 401 else EXIT["unreachable"]
    except KeyboardInterrupt:
        print("mlops-portal: interrupted; what was started goes on in the portal", file=sys.stderr)
        return 130
