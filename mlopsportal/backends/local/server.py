"""Runs one local deployment: Azure ML's inference server (azureml-inference-server-http) on 127.0.0.1 only.

The server's own launcher binds every interface (its DEFAULT_HOST is "0.0.0.0"); a deployment on a developer's
machine must not be reachable from the network, so this sets the host to the loopback address and then hands over
to the unmodified server. Detaches from whoever started it, so deployments outlive the web server and the workers.

    python -m mlopsportal.backends.local.server --dir DIR --port PORT --code-dir CODE --entry-script score.py \\
        --model-dir MODEL [--workers N] [--timeout-ms MS]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from mlopsportal.lib.process import detach

HOST = "127.0.0.1"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="the deployment's folder: log and pid file")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--code-dir", required=True, type=Path)
    parser.add_argument("--entry-script", required=True)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout-ms", type=int, default=60_000)
    parser.add_argument("--foreground", action="store_true")
    args = parser.parse_args(argv)

    if not args.foreground:
        detach()  # stopping the deployment (its process group) stops gunicorn's workers too

    args.dir.mkdir(parents=True, exist_ok=True)
    log = os.open(args.dir / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    state = {"pid": os.getpid(), "port": args.port, "host": HOST, "started_at": time.time(),
             "workers": args.workers, "timeout_ms": args.timeout_ms}
    tmp = args.dir / "server.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, args.dir / "server.json")
    print(f"[portal] starting Azure ML inference server for {args.dir.name} on {HOST}:{args.port}", flush=True)

    os.chdir(args.code_dir)
    os.environ.update({
        "AZUREML_MODEL_DIR": str(args.model_dir.resolve()),
        "AML_APP_ROOT": str(args.code_dir.resolve()),
        "SCORING_TIMEOUT_MS": str(args.timeout_ms),
        "WORKER_TIMEOUT": str(max(30, args.timeout_ms // 1000 + 10)),
        "PYTHONUNBUFFERED": "1",
    })
    from azureml_inference_server_http import amlserver

    amlserver.DEFAULT_HOST = HOST  # the one change: loopback instead of every interface
    sys.argv = ["azmlinfsrv", "--entry_script", args.entry_script, "--model_dir", str(args.model_dir.resolve()),
                "--port", str(args.port), "--worker_count", str(args.workers)]
    amlserver.run()


if __name__ == "__main__":
    main(sys.argv[1:])
