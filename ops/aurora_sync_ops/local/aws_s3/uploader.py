"""The program behind the local ``aws_s3.query_export_to_s3`` emulation.

PostgreSQL runs it through ``COPY ... TO PROGRAM`` (so as the database server's OS user):

    uploader.py upload   TOKEN   stdin = COPY output; streamed into S3 multipart uploads that
                                 are prepared but NOT completed
    uploader.py complete TOKEN   completes them (after COPY returned without error)
    uploader.py abort    TOKEN   aborts them (the query or COPY failed)

TOKEN is the hex encoding of a JSON object (id, bucket, key, region, kms_key, options,
max_file_size, abandon_after) built by the SQL function: hex keeps caller-supplied bucket and
key names away from ``sh -c``, which COPY TO PROGRAM uses.

Why two steps: a program fed by COPY sees the same end-of-file whether the query finished or
failed half-way, so it cannot decide alone whether the export is good. The SQL function runs
``complete`` only after COPY returned, and ``abort`` from its exception handler, which gives the
all-or-nothing result the product relies on. If the backend dies between the two (killed
connection), a watchdog forked at end-of-file aborts the uploads after ``abandon_after`` seconds.

Standard library only, on purpose: the server's OS user (``postgres`` when the stack runs as
root) usually cannot read the project's virtualenv, so boto3 is not importable here. The few S3
calls needed are signed with SigV4 below. Outcomes are written as JSON files next to the state,
which the SQL function reads with ``pg_read_file`` (a read-only transaction cannot COPY FROM a
program into a table, and the sync role's transactions are read-only).
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last
READ_SIZE = 1024 * 1024
OUTCOME_RETENTION_S = 600  # outcomes are read right after they are written; older ones are litter
EXPORT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# What the real extension puts in DETAIL when S3 cannot be reached.
UNREACHABLE = "Unable to connect to endpoint"


class S3Error(Exception):
    """S3 refused a request or could not be reached; the text is what S3 (or the network) said."""


class Interrupted(Exception):
    """PostgreSQL signalled the backend's process group (cancel, terminate, shutdown)."""


class UsageError(Exception):
    """The program was called wrongly (bad token, unknown option syntax, missing state dir)."""


# --- S3 over REST, SigV4 -------------------------------------------------------------------
class S3Client:
    def __init__(self, region: str) -> None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            endpoint = f"https://s3.{region}.amazonaws.com"
        parsed = urllib.parse.urlsplit(endpoint)
        self.secure = parsed.scheme == "https"
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or (443 if self.secure else 80)
        self.host_header = parsed.netloc
        self.region = region
        self.access_key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self.secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        self.session_token = os.environ.get("AWS_SESSION_TOKEN") or None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=120)
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _sign(self, method: str, path: str, query: str, headers: dict[str, str]) -> None:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
        signed["host"] = self.host_header
        names = sorted(signed)
        canonical = "\n".join(
            [
                method,
                path,
                query,
                *(f"{n}:{signed[n]}" for n in names),
                "",
                ";".join(names),
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )

    def request(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        path = "/" + urllib.parse.quote(bucket, safe="") + "/" + urllib.parse.quote(key, safe="/-_.~")
        query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted((params or {}).items())
        )
        for attempt in range(3):
            sent = dict(headers or {})
            self._sign(method, path, query, sent)
            sent["Content-Length"] = str(len(body))
            try:
                conn = self._connection()
                conn.request(method, path + ("?" + query if query else ""), body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.reset()
                if attempt == 2:
                    raise S3Error(UNREACHABLE) from exc
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status >= 500 and attempt < 2:
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status >= 300:
                raise S3Error(_error_text(response.status, data))
            return response.status, response, data
        raise S3Error(UNREACHABLE)  # pragma: no cover - the loop always returns or raises

    # multipart ---------------------------------------------------------------------------
    def create_multipart_upload(self, bucket: str, key: str, kms_key: str | None) -> str:
        headers = {}
        if kms_key:
            headers["x-amz-server-side-encryption"] = "aws:kms"
            headers["x-amz-server-side-encryption-aws-kms-key-id"] = kms_key
        _, _, data = self.request("POST", bucket, key, params={"uploads": ""}, headers=headers)
        upload_id = _xml_text(data, "UploadId")
        if not upload_id:
            raise S3Error("CreateMultipartUpload returned no UploadId")
        return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> str:
        _, response, _ = self.request(
            "PUT", bucket, key, params={"partNumber": str(number), "uploadId": upload_id}, body=body
        )
        return response.getheader("ETag") or ""

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[list[Any]]
    ) -> None:
        xml = (
            "<CompleteMultipartUpload>"
            + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_escape(etag)}</ETag></Part>"
                for n, etag in parts
            )
            + "</CompleteMultipartUpload>"
        )
        _, _, data = self.request("POST", bucket, key, params={"uploadId": upload_id}, body=xml.encode())
        # S3 may answer 200 and still fail the completion, with an <Error> document as the body.
        if b"<Error>" in data:
            raise S3Error(_error_text(200, data))

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self.request("DELETE", bucket, key, params={"uploadId": upload_id})
        except S3Error as exc:
            if "does not exist" not in str(exc):
                raise

    def delete_object(self, bucket: str, key: str) -> None:
        self.request("DELETE", bucket, key)


def _xml_text(data: bytes, tag: str) -> str | None:
    try:
        root = ET.fromstring(data)  # noqa: S314 - answers of the configured S3 endpoint
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] == tag:
        return root.text
    found = root.find(f".//{{*}}{tag}")
    return found.text if found is not None else None


def _error_text(status: int, data: bytes) -> str:
    message = _xml_text(data, "Message") or _xml_text(data, "Code")
    return message or f"HTTP {status}"


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- COPY options -> where rows end ------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
      | (?P<estr>[Ee]'(?:[^'\\]|\\.|'')*')
      | (?P<str>'(?:[^']|'')*')
      | (?P<qident>"(?:[^"]|"")*")
      | (?P<word>[A-Za-z_0-9.+-]+)
      | (?P<comma>,)
      | (?P<paren>[()*])
    )""",
    re.VERBOSE | re.DOTALL,
)
_E_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'"}


def parse_copy_options(options: str | None) -> dict[str, str]:
    """``format csv, delimiter $$:$$`` -> {"format": "csv", "delimiter": ":"}.

    COPY has already accepted the same string (it validates options before starting the
    program), so this only needs PostgreSQL's token rules, not its checks.
    """
    items: dict[str, str] = {}
    if not options or not options.strip():
        return items
    words: list[str] = []
    pos = 0
    text = options

    def flush() -> None:
        if words:
            items[words[0].lower()] = " ".join(words[1:])
            words.clear()

    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise UsageError(f"cannot read COPY options near {text[pos : pos + 20]!r}")
        pos = match.end()
        if match.group("comma"):
            flush()
        elif match.group("dollar"):
            delimiter = match.group("dollar")
            end = text.find(delimiter, pos)
            if end < 0:
                raise UsageError("unterminated dollar-quoted string in COPY options")
            words.append(text[pos:end])
            pos = end + len(delimiter)
        elif match.group("estr"):
            body = match.group("estr")[2:-1].replace("''", "'")
            words.append(re.sub(r"\\(.)", lambda m: _E_ESCAPES.get(m.group(1), m.group(1)), body))
        elif match.group("str"):
            words.append(match.group("str")[1:-1].replace("''", "'"))
        elif match.group("qident"):
            words.append(match.group("qident")[1:-1].replace('""', '"'))
        elif match.group("word"):
            words.append(match.group("word") if words else match.group("word").lower())
        else:
            words.append(match.group(0).strip())
    flush()
    return items


class RowScanner:
    """Tracks where rows end in COPY output so files are only cut between rows.

    text: every newline ends a row (COPY escapes newlines inside values).
    csv: a newline ends a row only outside a quoted value; the quote/escape characters come
    from the COPY options.
    """

    def __init__(self, options: dict[str, str]) -> None:
        fmt = options.get("format", "text").lower()
        self.fmt = fmt
        self.quote = options.get("quote", '"').encode()
        self.escape = options.get("escape", options.get("quote", '"')).encode()
        self.in_quotes = False
        self.skip_next = False  # an escape character ended the previous chunk

    @property
    def splittable(self) -> bool:
        # Binary COPY has one header for the whole stream; a second file without it would be
        # unreadable, and the real extension's behaviour there is not documented.
        return self.fmt in ("text", "csv")

    def scan(self, data: bytes, want: bool) -> list[int]:
        """Offsets just after each row end in ``data`` (only if ``want``); updates the state."""
        if self.fmt != "csv":
            return [m.end() for m in re.finditer(b"\n", data)] if want else []
        if self.escape == self.quote:
            # A doubled quote inside a value toggles twice, so quote parity is the state.
            q = self.quote
            if not want:
                self.in_quotes ^= bool(data.count(q) & 1)
                return []
            ends: list[int] = []
            start = 0
            state = self.in_quotes
            while (nl := data.find(b"\n", start)) != -1:
                state ^= bool(data.count(q, start, nl) & 1)
                if not state:
                    ends.append(nl + 1)
                start = nl + 1
            self.in_quotes = state ^ bool(data.count(q, start) & 1)
            return ends
        return self._scan_with_escape(data)

    def _scan_with_escape(self, data: bytes) -> list[int]:
        q, e = self.quote[0], self.escape[0]
        ends: list[int] = []
        i, n = 0, len(data)
        if self.skip_next and n:
            self.skip_next = False
            i = 1
        while i < n:
            if self.in_quotes:
                nq, ne = data.find(bytes([q]), i), data.find(bytes([e]), i)
                if ne != -1 and (nq == -1 or ne < nq):
                    if ne + 1 >= n:
                        self.skip_next = True
                        i = n
                    else:
                        i = ne + 2
                elif nq != -1:
                    self.in_quotes = False
                    i = nq + 1
                else:
                    i = n
            else:
                nq, nl = data.find(bytes([q]), i), data.find(b"\n", i)
                if nl != -1 and (nq == -1 or nl < nq):
                    ends.append(nl + 1)
                    i = nl + 1
                elif nq != -1:
                    self.in_quotes = True
                    i = nq + 1
                else:
                    i = n
        return ends


# --- state ---------------------------------------------------------------------------------
def state_dir() -> str:
    path = os.environ.get("AWS_S3_EMULATION_STATE_DIR")
    if not path or not os.path.isdir(path):
        raise UsageError(
            "AWS_S3_EMULATION_STATE_DIR is not set to an existing directory in the server's environment"
        )
    return path


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked_state(path: str) -> Iterator[dict[str, Any] | None]:
    """The pending state, locked against the watchdog; None when already finished."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0 or not os.path.exists(path):
            yield None  # finished by the other party while we waited for the lock
            return
        with open(path) as handle:
            yield json.load(handle)
    finally:
        os.close(fd)


def abort_all(client: S3Client, bucket: str, files: list[dict[str, Any]]) -> str | None:
    problem = None
    for item in files:
        try:
            client.abort_multipart_upload(bucket, item["key"], item["upload_id"])
        except S3Error as exc:
            problem = str(exc)
    return problem


# --- upload --------------------------------------------------------------------------------
class ExportWriter:
    """Bytes in, one multipart upload per output file (``key``, ``key_part2``, ...)."""

    def __init__(self, client: S3Client, job: dict[str, Any]) -> None:
        self.client = client
        self.job = job
        self.files: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.buffer = bytearray()

    def _key(self, index: int) -> str:
        return self.job["key"] if index == 1 else f"{self.job['key']}_part{index}"

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self.current is None:
            # Opened lazily so that a cut at the very end of the stream leaves no empty file.
            self.current = {"key": self._key(len(self.files) + 1), "upload_id": None, "parts": [], "bytes": 0}
            self.files.append(self.current)
        self.buffer += data
        self.current["bytes"] += len(data)
        while len(self.buffer) >= PART_SIZE:
            self._upload(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def _upload(self, body: bytes) -> None:
        assert self.current is not None
        if self.current["upload_id"] is None:
            self.current["upload_id"] = self.client.create_multipart_upload(
                self.job["bucket"], self.current["key"], self.job.get("kms_key")
            )
        number = len(self.current["parts"]) + 1
        etag = self.client.upload_part(
            self.job["bucket"], self.current["key"], self.current["upload_id"], number, body
        )
        self.current["parts"].append([number, etag])

    def finish_file(self) -> None:
        if self.current is None:
            return
        if self.buffer or not self.current["parts"]:
            self._upload(bytes(self.buffer))
            self.buffer.clear()
        self.current = None


def stream(job: dict[str, Any], writer: ExportWriter, source: Any) -> None:
    scanner = RowScanner(parse_copy_options(job.get("options")))
    limit = int(job["max_file_size"]) if scanner.splittable else sys.maxsize
    file_bytes = 0  # bytes in the current file
    at_row_end = True  # the stream so far ends exactly after a row
    while True:
        data = source.read1(READ_SIZE) if hasattr(source, "read1") else source.read(READ_SIZE)
        if not data:
            break
        if file_bytes + len(data) <= limit:
            scanner.scan(data, want=False)
            writer.write(data)
            file_bytes += len(data)
        else:
            ends = scanner.scan(data, want=True)
            pos, pos_is_row_end = 0, at_row_end
            while file_bytes + (len(data) - pos) > limit:
                room = limit - file_bytes
                # Prefer the last row end that keeps this file within the limit ...
                i = bisect_right(ends, pos + room) - 1
                cut = ends[i] if i >= 0 and ends[i] > pos else None
                if cut is None and file_bytes > 0 and pos_is_row_end:
                    cut = pos  # ... or close the file before a row that does not fit ...
                if cut is None:
                    # ... or, for a single row larger than the limit, end the file after it.
                    j = bisect_left(ends, pos + 1)
                    cut = ends[j] if j < len(ends) else None
                    if cut is None:
                        break  # that row goes on in the next chunk
                writer.write(memoryview(data)[pos:cut])
                writer.finish_file()
                file_bytes, pos, pos_is_row_end = 0, cut, True
            writer.write(memoryview(data)[pos:])
            file_bytes += len(data) - pos
        at_row_end = data.endswith(b"\n") and not scanner.in_quotes and not scanner.skip_next
    writer.finish_file()


def sweep_outcomes(directory: str) -> None:
    cutoff = time.time() - OUTCOME_RETENTION_S
    for name in os.listdir(directory):
        if name.endswith(".outcome.json"):
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)


def watchdog(path: str, client: S3Client, bucket: str, abandon_after: float) -> None:
    """In a forked child: abort the uploads if nobody completes or aborts them in time.

    Normally ``complete`` removes the state within a second and this exits. It stays in the
    server's process group so stopping the stack stops it too.
    """
    if os.fork() != 0:
        return
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        deadline = time.monotonic() + abandon_after
        while time.monotonic() < deadline:
            if not os.path.exists(path):
                os._exit(0)
            time.sleep(0.25)
        with locked_state(path) as state:
            if state is not None and abort_all(client, bucket, state["files"]) is None:
                os.unlink(path)
                print(f"aws_s3 emulation: aborted abandoned export {state['id']}", file=sys.stderr)
    finally:
        os._exit(0)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def cmd_upload(job: dict[str, Any], directory: str) -> int:
    sweep_outcomes(directory)
    path = os.path.join(directory, f"{job['id']}.state.json")
    client = S3Client(job["region"])
    writer = ExportWriter(client, job)
    # PostgreSQL signals a backend's whole process group, COPY's program included: SIGINT on
    # cancel (statement_timeout, pg_cancel_backend), SIGTERM on pg_terminate_backend or
    # shutdown. The export cannot complete then, so take the uploads back at once.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, _interrupt)
    try:
        stream(job, writer, sys.stdin.buffer)
    except Interrupted as exc:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        client.reset()  # the interrupted request may have left the connection mid-response
        started = [f for f in writer.files if f["upload_id"]]
        if abort_all(client, job["bucket"], started) is not None:
            # S3 refused the abort: leave the uploads to a later `abort` step.
            write_json_atomic(path, {"id": job["id"], "status": "failed", "error": None, "files": started})
        print(f"aws_s3 emulation: export {job['id']} interrupted by {exc}; uploads aborted", file=sys.stderr)
        return 1
    except S3Error as exc:
        started = [f for f in writer.files if f["upload_id"]]
        leftover = abort_all(client, job["bucket"], started)
        write_json_atomic(
            path,
            {"id": job["id"], "status": "failed", "error": str(exc), "files": started if leftover else []},
        )
        # Non-zero exit makes COPY fail now instead of streaming the rest of the result.
        return 3
    write_json_atomic(path, {"id": job["id"], "status": "pending", "error": None, "files": writer.files})
    watchdog(path, client, job["bucket"], float(job["abandon_after"]))
    return 0


def cmd_complete(job: dict[str, Any], directory: str) -> int:
    path = os.path.join(directory, f"{job['id']}.state.json")
    client = S3Client(job["region"])
    outcome: dict[str, Any]
    with locked_state(path) as state:
        if state is None:
            outcome = {"status": "failed", "error": "the export was already aborted (abandoned for too long)"}
        elif state["status"] != "pending":
            outcome = {"status": "failed", "error": state["error"]}
        else:
            done: list[str] = []
            try:
                for item in state["files"]:
                    client.complete_multipart_upload(
                        job["bucket"], item["key"], item["upload_id"], item["parts"]
                    )
                    done.append(item["key"])
            except S3Error as exc:
                # All or nothing: take back the files completed so far, abort the rest.
                for key in done:
                    with contextlib.suppress(S3Error):
                        client.delete_object(job["bucket"], key)
                abort_all(client, job["bucket"], [f for f in state["files"] if f["key"] not in done])
                outcome = {"status": "failed", "error": str(exc)}
            else:
                outcome = {
                    "status": "completed",
                    "files": len(state["files"]),
                    "bytes": sum(f["bytes"] for f in state["files"]),
                    "keys": done,
                }
            os.unlink(path)
    write_json_atomic(os.path.join(directory, f"{job['id']}.outcome.json"), outcome)
    return 0


def cmd_abort(job: dict[str, Any], directory: str) -> int:
    path = os.path.join(directory, f"{job['id']}.state.json")
    outcome: dict[str, Any] = {"status": "aborted", "error": None}
    with locked_state(path) as state:
        if state is not None:
            outcome["error"] = state.get("error")
            leftover = abort_all(S3Client(job["region"]), job["bucket"], state["files"])
            if leftover is None:
                os.unlink(path)
            # else: keep the state; the watchdog (if any) retries when its time is up.
    write_json_atomic(os.path.join(directory, f"{job['id']}.outcome.json"), outcome)
    return 0


def decode_token(token: str) -> dict[str, Any]:
    try:
        job: dict[str, Any] = json.loads(binascii.unhexlify(token).decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise UsageError("the export token is not hex-encoded JSON") from exc
    if not EXPORT_ID.match(str(job.get("id", ""))):
        raise UsageError("the export token has no valid id")
    job["region"] = (
        job.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    return job


def main(argv: list[str]) -> int:
    commands = {"upload": cmd_upload, "complete": cmd_complete, "abort": cmd_abort}
    if len(argv) != 3 or argv[1] not in commands:
        print("usage: uploader.py upload|complete|abort TOKEN", file=sys.stderr)
        return 2
    try:
        return commands[argv[1]](decode_token(argv[2]), state_dir())
    except UsageError as exc:
        print(f"aws_s3 emulation: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
