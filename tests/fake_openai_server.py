"""A loopback OpenAI-compatible HTTP server with a call counter and fault injection.

Tests and benchmarks point the real ``openai`` client at it; nothing leaves 127.0.0.1.
It serves

* ``POST /v1/chat/completions`` -- the answer text comes from a *responder* (by default a
  deterministic ``{"rating": "High" | "Medium" | "Low"}`` chosen from a hash of the first
  user message, see :func:`default_responder`);
* ``POST /v1/embeddings`` -- deterministic unit vectors derived from a hash of each input
  (``encoding_format`` ``float`` or ``base64``);

both with ``usage`` fields, after an optional simulated ``latency``.

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
            prompt_tokens = _approx_tokens(record.prompt) + 4 * len(body.get("messages") or [])
            completion_tokens = _approx_tokens(content)
            payload: Dict[str, Any] = {
                "id": f"chatcmpl-{record.index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
            if server.include_usage:
                payload["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
            self._finish(record, outcome, 200, content)
            self._send_json(200, payload)

        def _answer_embeddings(self, record: CallRecord, body: Dict[str, Any]) -> None:
            inputs = body.get("input")
            texts = inputs if isinstance(inputs, list) else [inputs]
            dim = int(body.get("dimensions") or server.embedding_dim)
            data = []
            for i, text in enumerate(texts):
                vector = embedding_for(str(text), dim)
                if body.get("encoding_format") == "base64":
                    packed = struct.pack(f"<{dim}f", *vector)
                    value: Any = base64.b64encode(packed).decode("ascii")
                else:
                    value = vector
                data.append({"object": "embedding", "index": i, "embedding": value})
            payload: Dict[str, Any] = {"object": "list", "data": data, "model": body.get("model", "unknown")}
            tokens = sum(_approx_tokens(str(t)) for t in texts)
            if server.include_usage:
                payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
            self._finish(record, "ok", 200)
            self._send_json(200, payload)

    return Handler
