"""The process that hosts moto in server mode for the local stack.

A plain ``moto_server`` would do for S3/SSM/STS/SQS/IAM/KMS, but Step Functions executions call
Lambda through moto's in-process Lambda backend, so this process also installs the router that
sends those invocations to the project's real handlers (``lambda_router``), runs the
interpreter's sleeps on a scaled clock (``sfn_clock``) and enforces Step Functions' payload,
history and Map concurrency limits (``sfn_limits``), and lets the interpreter's finished threads
go (``sfn_threads``). Run as
``python -m aurora_sync_ops.local.aws_server --port N``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    # moto's Step Functions interpreter calls Lambda over HTTP on this port.
    os.environ["MOTO_PORT"] = str(args.port)
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from .aws_credentials import install_credential_route
    from .distributed_map import install_distributed_map
    from .lambda_router import install_lambda_router
    from .sfn_clock import install_clock
    from .sfn_limits import install_limits
    from .sfn_threads import install_thread_reaping

    install_lambda_router()
    install_credential_route()
    install_clock()
    install_distributed_map()
    install_limits()
    install_thread_reaping()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    request = urllib.request.Request(
        f"http://{args.host}:{args.port}/moto-api/config",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
        pass
    print(f"moto listening on http://{args.host}:{args.port} (step functions execution on)", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
