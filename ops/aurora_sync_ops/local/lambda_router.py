"""Routes moto's Lambda invocations to the project's real handlers.

moto without Docker (``LambdaSimpleBackend``) echoes the payload; Step Functions executions in
the local stack must instead run ``planner.app.lambda_handler`` & co. ``install_lambda_router``
replaces ``LambdaSimpleBackend.invoke`` in the moto host process (``aws_server``).

Each invocation runs in a warm **worker process**, one per execution environment, as on
Lambda: the process starts with the function's Environment variables, ``AWS_ENDPOINT_URL`` of
this moto server, and credentials from ``sts:AssumeRole`` on the function's execution role;
it imports the configured ``Handler`` once (init) and then serves invocations one at a time.
Why processes and not threads with ``os.environ`` swapped under a lock: the environment is
process-global (libpq and boto3 read it), so a lock would serialise every Map iteration and
still leak module-level caches (``runtime_settings``, clients) between functions. Workers
give each function its own environment and caches, let Map iterations run concurrently (an
idle worker is reused, a busy one makes the pool grow), and let a timeout kill a runaway
handler without touching moto.

A handler exception becomes Lambda's error body (``errorType`` = the exception's class name)
with ``x-amz-function-error: Unhandled``, so Step Functions ``ErrorEquals`` matches the
project's error names. Unknown functions still fail in ``get_function`` exactly as in moto
(``ResourceNotFoundException``), which the interpreter turns into ``Lambda.*`` errors.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import decimal
import importlib
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

# Lambda's init phase may take 10 s; importing the Snowflake connector on a loaded test machine
# can come close, so allow more before calling a cold worker broken.
INIT_TIMEOUT_SECONDS = 30.0
IDLE_WORKER_SECONDS = 600.0
ROLE_SESSION_SECONDS = 3600
# Variables Lambda sets itself; a function's Environment cannot override them on AWS.
_RESERVED = (
    "_HANDLER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "TZ",
)
# What a worker inherits from the moto process; everything else (notably AWS_* and MOTO_*)
# stays out, as a Lambda sandbox starts from a clean environment.
_INHERITED = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)


# --- inside a worker process ---------------------------------------------------------------
class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.function_name: str = info["function_name"]
        self.function_version: str = info["function_version"]
        self.invoked_function_arn: str = info["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(info["memory_limit_in_mb"])
        self.aws_request_id: str = info["aws_request_id"]
        self.log_group_name: str = info["log_group_name"]
        self.log_stream_name: str = info["log_stream_name"]
        self.identity: Any = None
        self.client_context: Any = info.get("client_context")
        self._deadline = time.monotonic() + float(info["timeout_seconds"])

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def _error_body(exc: BaseException, error_type: str | None = None, message: str | None = None) -> bytes:
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return json.dumps(
        {
            "errorMessage": str(exc) if message is None else message,
            "errorType": error_type or type(exc).__name__,
            "requestId": "",
            "stackTrace": frames,
        }
    ).encode()


def _json_default(value: Any) -> Any:
    # The Python runtime's encoder accepts Decimal (and so do we); anything else cannot marshal.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _load_handler(handler: str) -> Any:
    module_name, _, func_name = handler.replace("/", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise _InitError(
            "Runtime.HandlerNotFound", f"Handler '{func_name}' missing on module '{module_name}'"
        )
    return func


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def worker_main(conn: Connection, handler: str, env: dict[str, str]) -> None:
    """Entry point of a worker process: apply the environment, init, then serve invocations."""
    os.environ.clear()
    os.environ.update(env)
    if hasattr(time, "tzset"):
        time.tzset()
    init_error: bytes | None = None
    func: Any = None
    try:
        func = _load_handler(handler)
    except _InitError as exc:
        init_error = _error_body(exc, exc.error_type)
    # Anything a module raises at import (e.g. a ConfigError from settings) is the init error,
    # as in the Python runtime; the worker must survive it to report it on every invoke.
    except Exception as exc:  # noqa: BLE001
        init_error = _error_body(exc)
    conn.send(("ready", b""))
    while True:
        try:
            event_bytes, info = conn.recv()
        except (EOFError, OSError):  # the moto process went away
            return
        if init_error is not None:
            conn.send(("error", init_error))
            continue
        try:
            event = json.loads(event_bytes or b"{}")
            result = func(event, LambdaContext(info))
        except Exception as exc:  # noqa: BLE001 - every handler failure becomes Lambda's error body
            conn.send(("error", _error_body(exc)))
            continue
        try:
            payload = json.dumps(result, default=_json_default).encode()
        except (TypeError, ValueError) as exc:
            conn.send(
                ("error", _error_body(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}"))
            )
            continue
        conn.send(("ok", payload))


# --- in the moto process -------------------------------------------------------------------
@dataclass(frozen=True)
class _Function:
    name: str
    version: str
    arn: str
    handler: str
    timeout: float
    memory_mb: int
    role: str
    region: str
    account_id: str
    environment: tuple[tuple[str, str], ...]


class _WorkerBroken(Exception):
    pass


class _Worker:
    def __init__(self, handler: str, env: dict[str, str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main, args=(child, handler, env), daemon=True, name=f"lambda:{handler}"
        )
        self.process.start()
        child.close()
        self.ready = False
        self.last_used = time.monotonic()

    def invoke(self, event: bytes, info: dict[str, Any], timeout: float) -> tuple[str, bytes]:
        if not self.ready:
            if not self.conn.poll(INIT_TIMEOUT_SECONDS):
                raise TimeoutError("init")
            self._recv()
            self.ready = True
        self.conn.send((event, info))
        if not self.conn.poll(timeout):
            raise TimeoutError("invoke")
        return self._recv()

    def _recv(self) -> tuple[str, bytes]:
        try:
            status, payload = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(1)
            raise _WorkerBroken(f"exit status {self.process.exitcode}") from exc
        return str(status), bytes(payload)

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class _Router:
    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, tuple[tuple[str, str], ...]], list[_Worker]] = {}
        self._busy: set[_Worker] = set()
        self._credentials: dict[tuple[str, str], tuple[datetime.datetime, dict[str, str]]] = {}

    # Credentials as Lambda gets them: AssumeRole on the execution role, session = function name.
    def credentials(self, fn: _Function) -> dict[str, str]:
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        with self._lock:
            cached = self._credentials.get((fn.role, fn.name))
            if cached and cached[0] - now > datetime.timedelta(minutes=10):
                return cached[1]
            role = sts_backends[fn.account_id][get_partition(fn.region)].assume_role(
                region_name=fn.region,
                role_session_name=fn.name,
                role_arn=fn.role,
                policy="",
                duration=ROLE_SESSION_SECONDS,
                external_id="",
            )
            creds = {
                "AWS_ACCESS_KEY_ID": role.access_key_id,
                "AWS_SECRET_ACCESS_KEY": role.secret_access_key,
                "AWS_SESSION_TOKEN": role.session_token,
            }
            self._credentials[(fn.role, fn.name)] = (role.expiration.replace(tzinfo=None), creds)
            return creds

    def environment(self, fn: _Function) -> dict[str, str]:
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env.update(dict(fn.environment))
        env.update(self.credentials(fn))
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        env.update(
            {
                "_HANDLER": fn.handler,
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_python{py}",
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream(),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "TZ": ":UTC",
            }
        )
        return env

    def _acquire(self, fn: _Function) -> tuple[_Worker, tuple[str, tuple[tuple[str, str], ...]]]:
        env = self.environment(fn)
        # The log stream name differs per sandbox; leave it out of what identifies an environment.
        key = (fn.handler, tuple(sorted((k, v) for k, v in env.items() if k != "AWS_LAMBDA_LOG_STREAM_NAME")))
        now = time.monotonic()
        stale: list[_Worker] = []
        worker: _Worker | None = None
        with self._lock:
            for pool_key, pool in self._idle.items():
                keep = [w for w in pool if w.alive() and now - w.last_used < IDLE_WORKER_SECONDS]
                stale.extend(w for w in pool if w not in keep)
                self._idle[pool_key] = keep
            pool = self._idle.get(key, [])
            if pool:
                worker = pool.pop()
        for old in stale:
            old.stop()
        if worker is None:
            worker = _Worker(fn.handler, env)
        with self._lock:
            self._busy.add(worker)
        return worker, key

    def _release(self, worker: _Worker, key: tuple[str, tuple[tuple[str, str], ...]], healthy: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if healthy:
                worker.last_used = time.monotonic()
                self._idle.setdefault(key, []).append(worker)
        if not healthy:
            worker.stop()

    def run(self, fn: _Function, event: bytes, client_context: Any) -> tuple[bool, bytes]:
        """Invoke once; returns (failed, payload) as Lambda's Invoke would."""
        request_id = str(uuid.uuid4())
        info = {
            "function_name": fn.name,
            "function_version": fn.version,
            "invoked_function_arn": fn.arn,
            "memory_limit_in_mb": fn.memory_mb,
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{fn.name}",
            "log_stream_name": _log_stream(),
            "timeout_seconds": fn.timeout,
            "client_context": client_context,
        }
        started = time.monotonic()
        worker, key = self._acquire(fn)
        healthy = False
        try:
            status, payload = worker.invoke(event, info, fn.timeout)
            healthy = True
            failed = status != "ok"
        except TimeoutError as exc:
            what = (
                f"Task timed out after {fn.timeout:.2f} seconds"
                if str(exc) == "invoke"
                else f"init did not finish within {INIT_TIMEOUT_SECONDS:.0f} seconds"
            )
            failed, payload = (
                True,
                _lambda_error("Sandbox.Timedout", f"RequestId: {request_id} Error: {what}"),
            )
        except _WorkerBroken as exc:
            message = f"RequestId: {request_id} Error: Runtime exited with error: {exc}"
            failed, payload = True, _lambda_error("Runtime.ExitError", message)
        finally:
            self._release(worker, key, healthy)
        outcome = json.loads(payload).get("errorType", "error") if failed else "ok"
        print(
            f"REPORT RequestId: {request_id} Function: {fn.name} Handler: {fn.handler} "
            f"Duration: {(time.monotonic() - started) * 1000:.1f} ms Outcome: {outcome}",
            file=sys.stderr,
            flush=True,
        )
        return failed, payload

    def shutdown(self) -> None:
        with self._lock:
            workers = [w for pool in self._idle.values() for w in pool] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.stop()


def _lambda_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _log_stream() -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
    return f"{today}/[$LATEST]{uuid.uuid4().hex}"


def _describe(fn: Any, qualifier: str | None) -> _Function:
    version = str(fn.version) if str(fn.version) != "$LATEST" or not qualifier else qualifier
    arn = (
        fn.function_arn
        if qualifier is None or fn.function_arn.endswith(f":{qualifier}")
        else f"{fn.function_arn}:{qualifier}"
    )
    return _Function(
        name=fn.function_name,
        version=version,
        arn=arn,
        handler=fn.handler or "",
        timeout=float(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        role=fn.role,
        region=fn.region,
        account_id=fn.account_id,
        environment=tuple(
            sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items() if k not in _RESERVED)
        ),
    )


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    if value is None and headers is not None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


def _invoke(
    router: _Router,
    backend: Any,
    *,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes | None:
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError

    moto_fn = backend.get_function(function_name, qualifier)  # unknown -> ResourceNotFoundException
    fn = _describe(moto_fn, qualifier)
    event = body.encode() if isinstance(body, str) else bytes(body or b"")
    if event.strip():
        try:
            json.loads(event)
        except ValueError:
            raise LambdaClientError(
                "InvalidRequestContentException", "Could not parse request body into json"
            ) from None
    if getattr(moto_fn, "package_type", "Zip") == "Image" or not fn.handler:
        raise InvalidParameterValueException(
            f"The local Lambda router runs Zip functions with a Handler; {fn.name} has none"
        )
    invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
    response_headers["x-amz-executed-version"] = fn.version
    if invocation_type == "DryRun":
        return b""
    client_context = _header(headers, "X-Amz-Client-Context")
    decoded_context = json.loads(base64.b64decode(client_context)) if client_context else None
    if invocation_type == "Event":
        threading.Thread(
            target=router.run, args=(fn, event, decoded_context), daemon=True, name=f"event:{fn.name}"
        ).start()
        return b""
    failed, payload = router.run(fn, event, decoded_context)
    if failed:
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["Content-Length"] = str(len(payload))
    return payload


def install_lambda_router(endpoint_url: str | None = None) -> None:
    """Replace moto's echoing no-Docker Lambda backend with one that runs real handlers.

    ``endpoint_url`` is what the handlers get as ``AWS_ENDPOINT_URL`` (this moto server);
    by default the loopback address on ``MOTO_PORT``.
    """
    from moto.awslambda_simple.models import LambdaSimpleBackend

    if endpoint_url is None:
        port = os.environ.get("MOTO_PORT")
        if not port:
            raise RuntimeError(
                "install_lambda_router needs endpoint_url or MOTO_PORT (the moto server's port)"
            )
        endpoint_url = f"http://127.0.0.1:{port}"
    router = _Router(endpoint_url)
    atexit.register(router.shutdown)

    def invoke(  # noqa: PLR0917 - LambdaBackend.invoke's signature, called positionally by moto
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes | None:
        return _invoke(
            router,
            self,
            function_name=function_name,
            qualifier=qualifier,
            body=body,
            headers=headers,
            response_headers=response_headers,
        )

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
