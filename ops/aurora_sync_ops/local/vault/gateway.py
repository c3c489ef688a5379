"""The local Vault address: Vault's ``aws`` IAM auth method in front of an OpenBao dev server.

``/v1/auth/aws/...`` is answered here (see ``aws_auth``); every other request is proxied to
OpenBao unchanged (method, path, query, headers including ``X-Vault-Token``, body). Run as
``python -m aurora_sync_ops.local.vault.gateway --port N --openbao-addr URL ...``.

Request and response bodies, headers and tokens are never logged: the access log carries the
method, the path without query string, and the status only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .aws_auth import AuthMethodError, AwsAuthMethod

MOUNT = "aws"
PREFIX = f"/v1/auth/{MOUNT}/"
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    )
)
# HTTP method -> the Vault capabilities that allow it (any one suffices).
CAPABILITIES = {
    "GET": {"read"},
    "POST": {"create", "update"},
    "PUT": {"create", "update"},
    "DELETE": {"delete"},
    "LIST": {"list"},
}


class OpenBao:
    """Minimal HTTP client for the upstream OpenBao server."""

    def __init__(self, addr: str, root_token_file: Path, timeout_s: float = 10.0) -> None:
        parts = urlsplit(addr)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8200
        self.root_token_file = root_token_file
        self.timeout_s = timeout_s

    def root_token(self) -> str:
        return self.root_token_file.read_text().strip()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def call(self, method: str, path: str, payload: Any, token: str) -> tuple[int, Any]:
        status, _, data = self.request(
            method,
            path,
            json.dumps(payload).encode(),
            {"X-Vault-Token": token, "Content-Type": "application/json"},
        )
        return status, json.loads(data) if data else {}


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], auth: AwsAuthMethod, openbao: OpenBao) -> None:
        super().__init__(address, Handler)
        self.auth = auth
        self.openbao = openbao


class Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    # --- plumbing ------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        return None  # replaced by log_request below, which leaves out query strings

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        sys.stderr.write(f"{self.log_date_time_string()} {self.command} {path} {code}\n")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise AuthMethodError("failed to parse JSON input") from None
        if not isinstance(data, dict):
            raise AuthMethodError("failed to parse JSON input")
        return data

    def _send(
        self,
        status: int,
        payload: Any = None,
        headers: list[tuple[str, str]] | None = None,
        raw: bytes | None = None,
    ) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        sent_type = False
        for name, value in headers or []:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
                sent_type |= name.lower() == "content-type"
        if body and not sent_type:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"errors": [message]})

    # --- dispatch ------------------------------------------------------------------------------
    def _handle(self) -> None:
        raw = self._body()
        path = urlsplit(self.path).path
        if not path.startswith(PREFIX):
            self._proxy(raw)
            return
        try:
            self._auth_method(path[len(PREFIX) :], raw)
        except AuthMethodError as exc:
            self._error(exc.status, str(exc))
        except OSError as exc:
            self._error(502, f"local aws auth gateway: upstream unreachable ({type(exc).__name__})")

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_PATCH = do_HEAD = _handle

    def _proxy(self, raw: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            status, response_headers, data = self.server.openbao.request(
                self.command, self.path, raw, headers
            )
        except OSError:
            self._error(
                502, "local Vault gateway: OpenBao upstream is unreachable; is the openbao part running?"
            )
            return
        self._send(status, headers=response_headers, raw=data)

    def _authorize(self, vault_path: str) -> None:
        """Vault's ACL decides, through OpenBao's own policy engine (sys/capabilities-self)."""
        token = self.headers.get("X-Vault-Token") or ""
        if not token:
            raise AuthMethodError("permission denied", status=403)
        status, answer = self.server.openbao.call(
            "POST", "/v1/sys/capabilities-self", {"paths": [vault_path]}, token
        )
        capabilities = (
            set(answer.get("capabilities") or answer.get(vault_path) or []) if status == 200 else set()
        )
        if "root" not in capabilities and not capabilities & CAPABILITIES.get(self.command, set()):
            raise AuthMethodError("permission denied", status=403)

    def _auth_method(self, sub: str, raw: bytes) -> None:
        auth = self.server.auth
        method = self.command
        query = parse_qs(urlsplit(self.path).query)
        if method == "GET" and query.get("list") == ["true"]:
            method = "LIST"
        vault_path = f"auth/{MOUNT}/{sub}"
        if sub == "login":
            if method not in ("POST", "PUT"):
                raise AuthMethodError("unsupported operation", status=405)
            self._login(self._json_body(raw))
            return
        if sub == "config/client":
            self._authorize(vault_path)
            if method == "GET":
                self._send(200, {"data": auth.read_client_config()})
            elif method in ("POST", "PUT"):
                self._ok(auth.write_client_config(self._json_body(raw)))
            elif method == "DELETE":
                auth.delete_client_config()
                self._send(204)
            else:
                raise AuthMethodError("unsupported operation", status=405)
            return
        if sub in ("roles", "role", "roles/", "role/") and method == "LIST":
            self._authorize(vault_path)
            roles = auth.list_roles()
            if roles:
                self._send(200, {"data": {"keys": roles}})
            else:
                self._send(404, {"errors": []})
            return
        match = re.fullmatch(r"role/([\w.@-]+)", sub)
        if match:
            self._authorize(vault_path)
            name = match[1]
            if method == "GET":
                role = auth.read_role(name)
                if role is None:
                    self._send(404, {"errors": []})
                else:
                    self._send(200, {"data": role})
            elif method in ("POST", "PUT"):
                self._ok(auth.write_role(name, self._json_body(raw)))
            elif method == "DELETE":
                auth.delete_role(name)
                self._send(204)
            else:
                raise AuthMethodError("unsupported operation", status=405)
            return
        raise AuthMethodError("unsupported path", status=404)

    def _ok(self, warnings: list[str]) -> None:
        if warnings:
            self._send(200, {"data": None, "warnings": warnings})
        else:
            self._send(204)

    def _login(self, body: dict[str, Any]) -> None:
        role, caller = self.server.auth.login(body)
        _, account, _, friendly = caller.entity
        request: dict[str, Any] = {
            # No policies would mean "inherit the parent's" (root): Vault gives "default" instead.
            "policies": role["token_policies"] or ["default"],
            "no_parent": True,
            "renewable": True,
            "display_name": f"{MOUNT}-{friendly}",
            "meta": {
                "role": role["name"],
                "role_id": role["role_id"],
                "auth_type": "iam",
                "client_arn": caller.arn,
                "canonical_arn": caller.canonical_arn,
                "client_user_id": caller.user_id.split(":")[0],
                "account_id": account,
            },
        }
        if role["token_ttl"]:
            request["ttl"] = f"{role['token_ttl']}s"
        if role["token_max_ttl"]:
            request["explicit_max_ttl"] = f"{role['token_max_ttl']}s"
        status, answer = self.server.openbao.call(
            "POST", "/v1/auth/token/create", request, self.server.openbao.root_token()
        )
        if status != 200:
            errors = answer.get("errors") if isinstance(answer, dict) else None
            raise AuthMethodError(
                f"local aws auth gateway: OpenBao refused to create the token: {errors}", 500
            )
        self._send(200, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--openbao-addr", required=True)
    parser.add_argument(
        "--openbao-token-file",
        type=Path,
        required=True,
        help="file holding the OpenBao root token (never passed on the command line)",
    )
    parser.add_argument("--aws-endpoint", required=True, help="moto server (STS) URL")
    parser.add_argument("--state-file", type=Path, required=True, help="JSON file keeping roles and config")
    parser.add_argument("--tls-port", type=int, help="also serve HTTPS here (needs --tls-cert/--tls-key)")
    parser.add_argument("--tls-cert", type=Path, help="PEM server certificate for --tls-port")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-port")
    args = parser.parse_args()

    # One auth method and one upstream behind both listeners: a login on either is the same login.
    auth = AwsAuthMethod(args.state_file, args.aws_endpoint)
    openbao = OpenBao(args.openbao_addr, args.openbao_token_file)
    servers = [Gateway((args.host, args.port), auth, openbao)]
    if args.tls_port:
        if not (args.tls_cert and args.tls_key):
            parser.error("--tls-port needs --tls-cert and --tls-key")
        tls = Gateway((args.host, args.tls_port), auth, openbao)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)
        tls.socket = context.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    tls_note = f" and https://{args.host}:{args.tls_port}" if args.tls_port else ""
    print(
        f"vault gateway listening on http://{args.host}:{args.port}{tls_note} -> {args.openbao_addr}",
        flush=True,
    )
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
