"""A loopback OpenAI-compatible HTTP server with a call counter and fault injection.

Tests and benchmarks point the real ``openai`` client at it; nothing leaves 127.0.0.1.
It serves

* ``POST /v1/chat/completions`` -- the answer text comes from a *responder* (by default a
  deterministic ``{"rating": "High" | "Medium" | "Low"}`` chosen from a hash of the first
  user message, see :func:`default_responder`);
* ``POST /v1/embeddings`` -- deterministic unit vectors derived from a hash of each input
  (``encoding_format`` ``float`` or ``base64``);

both with ``usage`` fields, after an optional simulated ``latency``; and the Batch API:

* ``POST /v1/files`` (multipart upload, ``purpose=batch``), ``GET /v1/files/{id}`` and
  ``GET /v1/files/{id}/content``;
* ``POST /v1/batches`` (validates the input file: JSON lines, unique ``custom_id``, the
  batch's ``url``) and ``GET /v1/batches/{id}``. A batch is ``in_progress`` while
  :meth:`FakeOpenAIServer.hold_batches` is on; otherwise it finishes at its next retrieve,
  its lines answered like the online endpoints (same responder), output and error files in
  OpenAI's format. :meth:`FakeOpenAIServer.inject_batch` scripts the next batches' faults:
  ``BatchFailed`` (status ``failed``, no output), ``BatchExpired(completed=n)`` (``expired``,
  only the first n lines answered, the rest in the error file as ``batch_expired``),
  ``ErrorLines(n)`` (the first n lines in the error file with HTTP 500), ``MalformedLines(n)``
  (the first n output lines cut off mid-JSON). ``batch_submissions`` counts ``POST
  /v1/batches``; ``batch_answers`` counts the output lines delivered per ``custom_id``.

Usage (pytest puts ``tests/`` on ``sys.path``; a script adds it itself, as
``benchmarks/llm_throughput.py`` does)::

    from fake_openai_server import FakeOpenAIServer, RateLimit, Hang

    with FakeOpenAIServer(latency=0.2) as server:          # binds 127.0.0.1, port 0
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        server.inject(RateLimit(retry_after=0.1), times=2)   # the next two requests get 429
        server.inject(Hang(seconds=5), match="item 42")     # requests whose prompt has "item 42"
        ...
        server.calls            # every request, as CallRecord, in arrival order
        server.ok_counts()      # Counter: fingerprint of the question -> answers delivered

Fault scripting (:meth:`FakeOpenAIServer.inject`): rules are checked in the order they were
added; the first rule whose ``match`` and ``path`` fit the request and that has uses left
(``times``; ``None`` = forever) decides the request's fate. Faults:

=====================  =============================================================
``RateLimit``          HTTP 429 with ``Retry-After`` (seconds) or ``retry-after-ms``
``ServerError``        HTTP 5xx (``echo_auth=True`` puts the Authorization header in the
                       error message, as careless proxies do -- for redaction tests)
``Unauthorized``       HTTP 401 (``echo_auth`` as above)
``BadRequest``         HTTP 400 with a message
``Hang``               no answer for ``seconds`` (past the client's timeout), then the
                       connection is closed
``Drop``               the connection is closed without any response
``BadBody``            HTTP 200 whose body is not JSON
``MalformedAnswer``    HTTP 200, a well-formed completion whose *content* is not valid JSON
``InvalidLabel``       HTTP 200, content ``{"rating": <label>}`` with a label outside the three
=====================  =============================================================

:meth:`hold_after` makes the server answer exactly ``n`` more requests (those no fault rule
takes) and then park every further one until :meth:`release`, which drops the parked
connections (outcome ``"held"``). A test uses it to
kill a client at a known point: every parked request was never answered.

:attr:`FakeOpenAIServer.max_in_flight` is the most requests it was handling at one moment.

A call's *fingerprint* identifies the question independent of retries: the sha256 of the
request's ``model`` plus ``messages`` (chat) or ``input`` (embeddings).
"""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default as email_default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union

__all__ = [
    "FakeOpenAIServer",
    "CallRecord",
    "RateLimit",
    "ServerError",
    "Unauthorized",
    "BadRequest",
    "Hang",
    "Drop",
    "BadBody",
    "MalformedAnswer",
    "InvalidLabel",
    "BatchFailed",
    "BatchExpired",
    "ErrorLines",
    "MalformedLines",
    "default_responder",
    "label_for_prompt",
    "embedding_for",
    "prompt_text",
]

LABELS = ("High", "Medium", "Low")


# --------------------------------------------------------------------------- faults
@dataclass(frozen=True)
class RateLimit:
    """HTTP 429. ``retry_after`` seconds go in ``Retry-After`` (or ``retry-after-ms`` if ``in_ms``)."""

    retry_after: Optional[float] = 0.05
    in_ms: bool = False
    outcome = "rate_limit"


@dataclass(frozen=True)
class ServerError:
    """HTTP ``status`` (5xx). ``echo_auth`` copies the Authorization header into the message."""

    status: int = 500
    echo_auth: bool = False
    outcome = "server_error"


@dataclass(frozen=True)
class Unauthorized:
    """HTTP 401. ``echo_auth`` copies the Authorization header into the message."""

    echo_auth: bool = True
    outcome = "unauthorized"


@dataclass(frozen=True)
class BadRequest:
    """HTTP 400 with ``message`` (e.g. a server without structured output)."""

    message: str = "response_format json_schema is not supported by this server"
    outcome = "bad_request"


@dataclass(frozen=True)
class Hang:
    """Do not answer for ``seconds`` (or until the server stops), then close the connection."""

    seconds: float = 5.0
    outcome = "hang"


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending anything."""

    outcome = "drop"


@dataclass(frozen=True)
class BadBody:
    """HTTP 200 with a body that is not JSON."""

    outcome = "bad_body"


@dataclass(frozen=True)
class MalformedAnswer:
    """HTTP 200, a valid completion whose message content is ``content`` (not valid JSON)."""

    content: str = '{"rating": "High"'
    outcome = "malformed"


@dataclass(frozen=True)
class InvalidLabel:
    """HTTP 200, a valid completion whose content is ``{"rating": label}``."""

    label: str = "Very High"
    outcome = "bad_label"


@dataclass(frozen=True)
class BatchFailed:
    """The batch ends ``failed`` (as after a validation error): no output file at all."""

    message: str = "the batch failed (injected)"


@dataclass(frozen=True)
class BatchExpired:
    """The batch ends ``expired``: the first ``completed`` lines answered, the rest ``batch_expired``."""

    completed: int = 0


@dataclass(frozen=True)
class ErrorLines:
    """The batch completes, but its first ``n`` lines go to the error file with HTTP ``status``."""

    n: int = 1
    status: int = 500


@dataclass(frozen=True)
class MalformedLines:
    """The batch completes, but its first ``n`` output lines are cut off mid-JSON."""

    n: int = 1


BatchFault = Union[BatchFailed, BatchExpired, ErrorLines, MalformedLines]

Fault = Union[RateLimit, ServerError, Unauthorized, BadRequest, Hang, Drop, BadBody, MalformedAnswer, InvalidLabel]


# --------------------------------------------------------------------------- answers
def prompt_text(body: Dict[str, Any]) -> str:
    """The text of a request: chat messages' contents, or embedding inputs, joined by newlines."""
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
    inputs = body.get("input")
    return "\n".join(inputs) if isinstance(inputs, list) else str(inputs)


def fingerprint(body: Dict[str, Any]) -> str:
    """Identity of the question asked (model + messages / input), independent of retries."""
    question = {"model": body.get("model"), "messages": body.get("messages"), "input": body.get("input")}
    return hashlib.sha256(json.dumps(question, sort_keys=True).encode("utf-8")).hexdigest()


def label_for_prompt(text: str) -> str:
    """The default responder's label for a prompt: a deterministic function of its text."""
    return LABELS[int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 3]


def default_responder(body: Dict[str, Any]) -> str:
    """``{"rating": label_for_prompt(first user message)}``.

    The *first* user message is the question; later turns (a repair request after a bad
    answer) get the same answer as the question itself, as a consistent model would give.
    """
    messages = body.get("messages") or []
    first_user = next((m for m in messages if m.get("role") == "user"), {"content": ""})
    return json.dumps({"rating": label_for_prompt(str(first_user.get("content", "")))})


def embedding_for(text: str, dim: int = 8) -> List[float]:
    """Deterministic unit vector for ``text`` (what ``/v1/embeddings`` returns)."""
    values: List[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8")).digest()
        values.extend(b / 127.5 - 1.0 for b in digest)
        counter += 1
    values = values[:dim]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def chat_payload(index: int, body: Dict[str, Any], prompt: str, content: str, include_usage: bool) -> Dict[str, Any]:
    """A chat completion answering ``body`` with ``content`` (what the online endpoint returns)."""
    prompt_tokens = _approx_tokens(prompt) + 4 * len(body.get("messages") or [])
    completion_tokens = _approx_tokens(content)
    payload: Dict[str, Any] = {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if include_usage:
        payload["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return payload


def embeddings_payload(body: Dict[str, Any], default_dim: int, include_usage: bool) -> Dict[str, Any]:
    """The embeddings response to ``body`` (what the online endpoint returns)."""
    inputs = body.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    dim = int(body.get("dimensions") or default_dim)
    data = []
    for i, text in enumerate(texts):
        vector = embedding_for(str(text), dim)
        if body.get("encoding_format") == "base64":
            value: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")
        else:
            value = vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    payload: Dict[str, Any] = {"object": "list", "data": data, "model": body.get("model", "unknown")}
    tokens = sum(_approx_tokens(str(t)) for t in texts)
    if include_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return payload


# --------------------------------------------------------------------------- records
@dataclass
class CallRecord:
    """One request as the server saw it."""

    index: int
    path: str
    body: Optional[Dict[str, Any]]
    authorization: Optional[str]
    fingerprint: str
    prompt: str
    started: float
    outcome: str = "pending"  # ok | rate_limit | server_error | unauthorized | hang | drop | ...
    status: Optional[int] = None
    content: Optional[str] = None  # chat answer delivered (ok / malformed / bad_label)
    finished: Optional[float] = None


@dataclass
class _Rule:
    fault: Fault
    times: Optional[int]
    match: Optional[Union[str, Callable[[CallRecord], bool]]]
    path: Optional[str]

    def applies(self, record: CallRecord) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.path is not None and not record.path.endswith(self.path):
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(record))
        return self.match in record.prompt


# --------------------------------------------------------------------------- server
class FakeOpenAIServer:
    """OpenAI-compatible loopback server; see the module docstring.

    Args:
        latency: seconds every request waits before it is answered (simulated model time).
        responder: ``body -> content`` for chat completions (default :func:`default_responder`).
        embedding_dim: length of the vectors ``/v1/embeddings`` returns.
        include_usage: put ``usage`` in the responses (some compatible servers omit it).
        api_key: if set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
    """

    def __init__(
        self,
        latency: float = 0.0,
        responder: Callable[[Dict[str, Any]], str] = default_responder,
        embedding_dim: int = 8,
        include_usage: bool = True,
        api_key: Optional[str] = None,
    ) -> None:
        self.latency = latency
        self.responder = responder
        self.embedding_dim = embedding_dim
        self.include_usage = include_usage
        self.api_key = api_key
        self._lock = threading.Lock()
        self._calls: List[CallRecord] = []
        self._rules: List[_Rule] = []
        self._stop = threading.Event()
        self._hold_limit: Optional[int] = None
        self._admitted = 0
        self._release = threading.Event()
        self._in_flight = 0
        #: the most requests the server was handling at one moment (proves bounded concurrency)
        self.max_in_flight = 0
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._files: Dict[str, Dict[str, Any]] = {}
        self._batches: Dict[str, Dict[str, Any]] = {}
        self._batch_faults: List[BatchFault] = []
        self._batch_hold = False
        #: output lines delivered with HTTP 200, per custom_id, over every batch
        self.batch_answers: Counter = Counter()

    # ---- lifecycle
    def start(self) -> "FakeOpenAIServer":
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` -- pass as the client's ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting
    def inject(
        self,
        fault: Fault,
        times: Optional[int] = 1,
        match: Optional[Union[str, Callable[[CallRecord], bool]]] = None,
        path: Optional[str] = None,
    ) -> None:
        """Answer matching requests with ``fault``, ``times`` times (``None``: always).

        ``match`` is a substring of the request's prompt text (see :func:`prompt_text`) or a
        predicate on the :class:`CallRecord`; ``path`` a suffix such as ``"/embeddings"``.
        """
        with self._lock:
            self._rules.append(_Rule(fault, times, match, path))

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def hold_after(self, n: Optional[int]) -> None:
        """Answer ``n`` more questions normally, then park every request until :meth:`release`.

        ``None`` switches holding off (parked requests stay parked until :meth:`release`).
        """
        with self._lock:
            self._hold_limit = None if n is None else self._admitted + n
            self._release.clear()

    def release(self) -> None:
        """Drop every parked request (outcome ``"held"``) and stop holding new ones."""
        with self._lock:
            self._hold_limit = None
        self._release.set()

    def inject_batch(self, fault: BatchFault) -> None:
        """The next submitted batch (one per call, in order) ends with ``fault``."""
        with self._lock:
            self._batch_faults.append(fault)

    def hold_batches(self) -> None:
        """Keep every batch ``in_progress`` until :meth:`release_batches`."""
        with self._lock:
            self._batch_hold = True

    def release_batches(self) -> None:
        with self._lock:
            self._batch_hold = False

    @property
    def batch_submissions(self) -> int:
        """``POST /v1/batches`` requests so far (batches submitted, accepted or not)."""
        return self.count(path="/batches")

    def batch(self, batch_id: str) -> Dict[str, Any]:
        """The server's state of one batch (status, input lines, fault)."""
        with self._lock:
            return dict(self._batches[batch_id])

    # ---- observation
    @property
    def calls(self) -> List[CallRecord]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def count(self, outcome: Optional[str] = None, path: Optional[str] = None) -> int:
        """Number of requests, optionally only those with ``outcome`` / on ``path`` (suffix)."""
        return sum(
            1
            for c in self.calls
            if (outcome is None or c.outcome == outcome) and (path is None or c.path.endswith(path))
        )

    def ok_counts(self) -> Counter:
        """``Counter`` of fingerprints over requests that were answered with HTTP 200."""
        return Counter(c.fingerprint for c in self.calls if c.status == 200)

    @property
    def held(self) -> int:
        """Requests parked right now by :meth:`hold_after`."""
        return sum(1 for c in self.calls if c.outcome == "parked")

    # ---- Batch API internals
    def _add_file(self, content: bytes, filename: str, purpose: str) -> Dict[str, Any]:
        with self._lock:
            file_id = f"file-{len(self._files) + 1}"
            obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                   "filename": filename, "purpose": purpose, "status": "processed", "content": content}
            self._files[file_id] = obj
            return obj

    def _create_batch(self, body: Dict[str, Any]) -> Union[str, Dict[str, Any]]:
        """A new batch object, or the message of a 400 when the request or its file is invalid."""
        endpoint = body.get("endpoint")
        with self._lock:
            upload = self._files.get(str(body.get("input_file_id")))
            if upload is None or upload["purpose"] != "batch":
                return "input_file_id does not name a file uploaded with purpose 'batch'"
            lines, seen = [], set()
            for n, text in enumerate(upload["content"].decode("utf-8").splitlines(), 1):
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    return f"input line {n} is not JSON"
                if line.get("custom_id") in seen or not line.get("custom_id"):
                    return f"input line {n}: custom_id missing or not unique"
                if line.get("url") != endpoint or line.get("method") != "POST":
                    return f"input line {n}: url {line.get('url')!r} is not the batch endpoint {endpoint!r}"
                seen.add(line["custom_id"])
                lines.append(line)
            batch_id = f"batch_{len(self._batches) + 1}"
            self._batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": endpoint, "errors": None,
                "input_file_id": upload["id"], "completion_window": body.get("completion_window", "24h"),
                "status": "in_progress", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "metadata": body.get("metadata"),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "_lines": lines, "_fault": self._batch_faults.pop(0) if self._batch_faults else None,
            }
            return self._public(batch_id)

    def _public(self, batch_id: str) -> Dict[str, Any]:
        return {k: v for k, v in self._batches[batch_id].items() if not k.startswith("_")}

    def _retrieve_batch(self, batch_id: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            if batch_id not in self._batches:
                return None
            batch = self._batches[batch_id]
            if batch["status"] == "in_progress" and not self._batch_hold:
                self._finish_batch(batch)
            return self._public(batch_id)

    def _line_answer(self, n: int, line: Dict[str, Any]) -> Dict[str, Any]:
        body = line["body"]
        if line["url"].endswith("/embeddings"):
            payload = embeddings_payload(body, self.embedding_dim, self.include_usage)
        else:
            payload = chat_payload(n, body, prompt_text(body), self.responder(body), self.include_usage)
        return {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                "response": {"status_code": 200, "request_id": f"req_{n}", "body": payload}, "error": None}

    def _finish_batch(self, batch: Dict[str, Any]) -> None:
        """Answer the lines (under the lock), apply the batch's fault, write the files."""
        fault, lines = batch["_fault"], batch["_lines"]
        if isinstance(fault, BatchFailed):
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "failed", "message": fault.message, "line": None}]}
            return
        output, errors = [], []
        for n, line in enumerate(lines):
            if isinstance(fault, BatchExpired) and n >= fault.completed:
                errors.append(json.dumps({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "response": None,
                                          "error": {"code": "batch_expired", "message": "This request could not be "
                                                    "executed before the completion window expired."}}))
            elif isinstance(fault, ErrorLines) and n < fault.n:
                errors.append(json.dumps({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "response": {
                    "status_code": fault.status, "request_id": f"req_{n}",
                    "body": {"error": {"message": "The server had an error", "type": "server_error"}}}, "error": None}))
            elif isinstance(fault, MalformedLines) and n < fault.n:
                output.append(json.dumps(self._line_answer(n, line))[:40])
            else:
                output.append(json.dumps(self._line_answer(n, line)))
                self.batch_answers[line["custom_id"]] += 1
        batch["status"] = "expired" if isinstance(fault, BatchExpired) else "completed"
        for name, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self._files) + 1}"
                content = ("\n".join(rows) + "\n").encode("utf-8")
                self._files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                                        "created_at": int(time.time()), "filename": f"{batch['id']}_{name}.jsonl",
                                        "purpose": "batch_output", "status": "processed", "content": content}
                batch[name] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(output), "failed": len(errors)}

    # ---- internals used by the handler
    def _register(self, path: str, body: Optional[Dict[str, Any]], authorization: Optional[str]) -> CallRecord:
        with self._lock:
            record = CallRecord(
                index=len(self._calls),
                path=path,
                body=body,
                authorization=authorization,
                fingerprint=fingerprint(body or {}),
                prompt=prompt_text(body or {}),
                started=time.monotonic(),
            )
            self._calls.append(record)
            return record

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _pick_fault(self, record: CallRecord) -> Optional[Fault]:
        with self._lock:
            for rule in self._rules:
                if rule.applies(record):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.fault
            return None

    def _admit(self, record: CallRecord) -> bool:
        """True if the request may be answered now; False if it must be parked."""
        with self._lock:
            if self._hold_limit is not None and self._admitted >= self._hold_limit:
                record.outcome = "parked"
                return False
            self._admitted += 1
            return True


def _make_handler(server: FakeOpenAIServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        # -- helpers
        def _send_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self._send_bytes(status, data, headers)

        def _send_bytes(self, status: int, data: bytes, headers: Optional[Dict[str, str]] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def _drop(self) -> None:
            self.close_connection = True
            try:
                # RST rather than FIN: the client sees a dropped connection at once
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _finish(self, record: CallRecord, outcome: str, status: Optional[int], content: Optional[str] = None) -> None:
            with server._lock:
                record.outcome = outcome
                record.status = status
                record.content = content
                record.finished = time.monotonic()

        # -- routes
        def do_GET(self) -> None:  # noqa: N802
            if self._batch_get():
                return
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": []})
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:  # noqa: N802
            server._enter()
            try:
                self._post()
            finally:
                server._leave()

        def _post(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/").endswith("/files"):
                self._upload(raw)
                return
            try:
                body = json.loads(raw.decode("utf-8")) if raw else {}
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
            auth = self.headers.get("Authorization")
            record = server._register(self.path, body, auth)
            if body is None or not isinstance(body, dict):
                self._finish(record, "bad_request", 400)
                self._send_json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
                return
            is_chat = self.path.endswith("/chat/completions")
            is_emb = self.path.endswith("/embeddings")
            if self.path.rstrip("/").endswith("/batches"):
                self._create_batch(record, body)
                return
            if not (is_chat or is_emb):
                self._finish(record, "not_found", 404)
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            if server.api_key is not None and auth != f"Bearer {server.api_key}":
                self._finish(record, "unauthorized", 401)
                self._send_json(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
                return

            fault = server._pick_fault(record)
            if fault is None and not server._admit(record):
                server._release.wait()
                self._finish(record, "held", None)
                self._drop()
                return
            if server.latency:
                server._stop.wait(server.latency)

            if isinstance(fault, Hang):
                server._stop.wait(fault.seconds)
                self._finish(record, fault.outcome, None)
                self._drop()
                return
            if isinstance(fault, Drop):
                self._finish(record, fault.outcome, None)
                self._drop()
                return
            if isinstance(fault, RateLimit):
                headers = {}
                if fault.retry_after is not None:
                    if fault.in_ms:
                        headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
                    else:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                self._finish(record, fault.outcome, 429)
                self._send_json(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, headers)
                return
            if isinstance(fault, (ServerError, Unauthorized)):
                status = fault.status if isinstance(fault, ServerError) else 401
                message = "The server had an error while processing your request."
                if fault.echo_auth:
                    message += f" (request header Authorization: {auth})"
                self._finish(record, fault.outcome, status)
                self._send_json(status, {"error": {"message": message, "type": "server_error"}})
                return
            if isinstance(fault, BadRequest):
                self._finish(record, fault.outcome, 400)
                self._send_json(400, {"error": {"message": fault.message, "type": "invalid_request_error"}})
                return
            if isinstance(fault, BadBody):
                self._finish(record, fault.outcome, 200)
                self._send_bytes(200, b'{"id": "chatcmpl-x", "choices": [')
                return

            if is_emb:
                self._answer_embeddings(record, body)
            else:
                if isinstance(fault, MalformedAnswer):
                    content, outcome = fault.content, fault.outcome
                elif isinstance(fault, InvalidLabel):
                    content, outcome = json.dumps({"rating": fault.label}), fault.outcome
                else:
                    content, outcome = server.responder(body), "ok"
                self._answer_chat(record, body, content, outcome)

        def _answer_chat(self, record: CallRecord, body: Dict[str, Any], content: str, outcome: str) -> None:
            payload = chat_payload(record.index, body, record.prompt, content, server.include_usage)
            self._finish(record, outcome, 200, content)
            self._send_json(200, payload)

        def _answer_embeddings(self, record: CallRecord, body: Dict[str, Any]) -> None:
            payload = embeddings_payload(body, server.embedding_dim, server.include_usage)
            self._finish(record, "ok", 200)
            self._send_json(200, payload)

        # -- Batch API
        def _batch_get(self) -> bool:
            """Serve ``GET /v1/files/...`` and ``GET /v1/batches/{id}``; False if not such a path."""
            parts = self.path.split("?")[0].rstrip("/").split("/")
            if len(parts) >= 4 and parts[-3] == "files" and parts[-1] == "content":
                record = server._register(self.path, None, self.headers.get("Authorization"))
                data = server._files.get(parts[-2])
                if data is None:
                    self._finish(record, "not_found", 404)
                    self._send_json(404, {"error": {"message": "no such file", "type": "invalid_request_error"}})
                else:
                    self._finish(record, "ok", 200)
                    self._send_bytes(200, data["content"])
                return True
            if len(parts) >= 3 and parts[-2] in ("files", "batches"):
                record = server._register(self.path, None, self.headers.get("Authorization"))
                if parts[-2] == "files":
                    obj = server._files.get(parts[-1])
                    obj = None if obj is None else {k: v for k, v in obj.items() if k != "content"}
                else:
                    obj = server._retrieve_batch(parts[-1])
                if obj is None:
                    self._finish(record, "not_found", 404)
                    self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                else:
                    self._finish(record, "ok", 200)
                    self._send_json(200, obj)
                return True
            return False

        def _upload(self, raw: bytes) -> None:
            record = server._register(self.path, None, self.headers.get("Authorization"))
            message = BytesParser(policy=email_default).parsebytes(
                b"Content-Type: " + self.headers.get("Content-Type", "").encode("latin-1") + b"\r\n\r\n" + raw
            )
            fields: Dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[name] = (part.get_filename(), part.get_payload(decode=True))
            if "file" not in fields:
                self._finish(record, "bad_request", 400)
                self._send_json(400, {"error": {"message": "no file part", "type": "invalid_request_error"}})
                return
            filename, content = fields["file"]
            purpose = (fields.get("purpose") or (None, b""))[1].decode("utf-8")
            obj = server._add_file(content, filename or "upload.jsonl", purpose)
            self._finish(record, "ok", 200)
            self._send_json(200, {k: v for k, v in obj.items() if k != "content"})

        def _create_batch(self, record: CallRecord, body: Dict[str, Any]) -> None:
            obj = server._create_batch(body)
            if isinstance(obj, str):
                self._finish(record, "bad_request", 400)
                self._send_json(400, {"error": {"message": obj, "type": "invalid_request_error"}})
                return
            self._finish(record, "ok", 200)
            self._send_json(200, obj)

    return Handler
