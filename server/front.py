"""HTTP front processes: ``evalstore serve --http-workers N`` with N > 1.

One Python process answers at most ~2,500 single-example ingest requests a second here:
its event loop (HTTP, middlewares, the JSON parse: ~0.2 ms of CPU a request) and its writer
threads share one GIL (``benchmarks/README.md``, "The ceiling of one Python process
here"). With ``--http-workers N`` the server runs as N + 1 processes:

- **the writer** (the process started by ``evalstore serve``): it owns the store file, the
  group commit and the journal, exactly as the one-process server, but serves HTTP only
  on a Unix socket in a private temporary directory, for the fronts;
- **N fronts** (``python -m server.front``, started and watched by the writer:
  :class:`Fronts`): each listens on the server's address (``--host``/``--port``) with its
  own socket, all bound with ``SO_REUSEPORT`` by the writer, so the kernel spreads the
  clients' connections over them (a front's death closes only its socket: the others keep
  accepting; a shared socket accepted by all would hand most connections of a burst to
  whichever front wakes first). The writer binds them, so a port in use fails the start as
  before, and ``--port 0`` works; it passes each to its front and keeps no copy.

A front answers the ingest fast path itself (``POST /v1/models/{model}/features|
predictions|labels``: :class:`server.fast_ingest.FastIngest`, the one-process server's own
code, with the same body limit and JSON errors around it): bearer token, query parameters,
body limit and the parse of the body into Arrow run in the front; the parsed request goes
to the writer with the others of the same event-loop turn in one message
(:mod:`server.front_link`), and the front answers once the writer committed it. Every other
request (queries, metrics, dashboards, monitors, ``/healthz``, an ingest request the fast
path leaves to FastAPI) is passed through unchanged to the writer's Unix socket
(:class:`Proxy`): users keep one URL, and the writer stays the only process with the
store open.

The writer restarts a front that dies (after 1 s); a front exits when the writer does (it
asks the kernel for a SIGTERM at its parent's death, and stops once the link closes).
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("evalstore.server")

#: Hop-by-hop headers a proxy does not pass on (RFC 9110 section 7.6.1), and the length,
#: which the proxy's own HTTP client sets.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
    }
)
#: Seconds before a dead front is started again.
RESTART_DELAY = 1.0


# ---------------------------------------------------------------------- in the front


class Proxy:
    """ASGI app passing a request through to the writer's HTTP server on a Unix socket,
    response streamed back as it comes; 503 ``writer_unavailable`` if it cannot be
    reached."""

    def __init__(self, path: str) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=path),
            base_url="http://evalstore-writer",
            timeout=None,  # the writer bounds its reads itself (--time-limit)
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        import httpx

        from server.errors import ApiError, error_response
        from server.front_link import unavailable

        if scope["type"] != "http":
            return
        chunks = []
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except ApiError as error:  # a chunked body over the limit: 413, as FastAPI answers
            refusal = error_response(error)
            assert refusal is not None
            await refusal(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        request = self._client.build_request(
            scope["method"], url, headers=headers, content=b"".join(chunks)
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as error:
            answer = error_response(unavailable(f"{type(error).__name__}: {error}"))
            assert answer is not None
            await answer(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.lower(), v)
                        for k, v in response.headers.raw
                        if k.lower() not in HOP_BY_HOP or k.lower() == b"content-length"
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


class FrontApp:
    """A front's ASGI app: the body limit and the JSON 500 around the ingest fast path,
    which forwards to the writer through ``link``; everything else goes to ``proxy``."""

    def __init__(self, link: Any, proxy: Proxy, tokens: Any, max_body_bytes: int) -> None:
        from server.errors import Unexpected
        from server.fast_ingest import FastIngest
        from server.limits import BodyLimit

        self.link = link
        self.proxy = proxy
        # what the fast path and the bearer-token check read of ``app.state``
        self.state = SimpleNamespace(
            committer=link,
            store=SimpleNamespace(limits=SimpleNamespace(time_range=None)),  # the writer's
            settings=SimpleNamespace(tokens=tokens),
        )
        self._app = BodyLimit(Unexpected(FastIngest(proxy)), max_body_bytes=max_body_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        scope["app"] = self
        await self._app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.link is not None:
                        await self.link.connect()
                except OSError as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.link is not None:
                    await self.link.close()
                await self.proxy.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _die_with_parent(parent: int) -> None:
    """Ask Linux for a SIGTERM when the writer dies (then exit if it already has)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """A front process (started by :class:`Fronts` with its configuration)."""
    import uvicorn

    from server.auth import Tokens
    from server.front_link import LinkClient
    from server.serve import GracefulServer

    argv = sys.argv[1:] if argv is None else argv
    config = pickle.loads(base64.b64decode(argv[0]))
    _die_with_parent(config["parent"])
    sock = socket.socket(fileno=config["fd"])
    tokens = Tokens.load(config["tokens"]) if config["tokens"] is not None else None
    server: list[Any] = []

    def lost() -> None:  # the writer is gone: stop (the kernel's SIGTERM may be on its way)
        if server:
            server[0].should_exit = True

    link = LinkClient(config["link"], on_lost=lost) if config["group_commit"] else None
    app = FrontApp(link, Proxy(config["http_socket"]), tokens, config["max_body_bytes"])
    uvicorn_config = uvicorn.Config(
        app,
        http=config["http"],
        loop=config["loop"],
        log_level=config["log_level"],
        access_log=config["log_level"] == "debug",
        timeout_graceful_shutdown=60,
        lifespan="on",
    )
    server.append(GracefulServer(uvicorn_config))
    server[0].run(sockets=[sock])


# ---------------------------------------------------------------------- in the writer


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` with ``SO_REUSEPORT`` (several of them, one
    per front, share the address; the kernel spreads connections over them)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _probe(host: str, port: int) -> int:
    """``port`` (a free one if 0) after checking that nothing listens on it: a socket bound
    without ``SO_REUSEPORT`` fails where any socket is bound, including another server's
    ``SO_REUSEPORT`` ones, which the fronts' sockets would otherwise silently join."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        return probe.getsockname()[1]


class Fronts:
    """The writer's N front processes on ``host:port`` (see the module): sockets bound at
    construction (an address in use fails here), processes started by :meth:`start`,
    restarted when one dies, stopped (SIGTERM, then SIGKILL after ``timeout``) by
    :meth:`stop`."""

    def __init__(self, count: int, host: str, port: int, config: dict[str, Any]) -> None:
        self.count = count
        self.host = host
        self._config = config
        try:
            self.port = _probe(host, port)
            self._sockets = [bind_reuseport(host, self.port) for _ in range(count)]
        except OSError as error:
            from evalstore.errors import InvalidParameterError

            raise InvalidParameterError(
                f"cannot listen on {host}:{port} ({error.strerror or error}); is another "
                "server running there? Pick another --port"
            ) from None
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="evalstore-fronts", daemon=True)

    def start(self) -> None:
        with self._lock:
            for index in range(self.count):
                self._spawn(index)
        self._watcher.start()

    def _spawn(self, index: int) -> None:
        sock = self._sockets[index]
        if sock is None:
            sock = bind_reuseport(self.host, self.port)
        config = dict(self._config, fd=sock.fileno(), parent=os.getpid())
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "server.front",
                 base64.b64encode(pickle.dumps(config)).decode("ascii")],
                pass_fds=[sock.fileno()],
                env=env,
            )  # fmt: skip
        finally:
            sock.close()  # the front's now: a dead front's socket must not stay open here
            self._sockets[index] = None

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for index, process in enumerate(self.processes):
                if process is None or process.poll() is None:
                    continue
                log.warning(
                    "HTTP front process %d (pid %d) exited with %s; starting it again in %g s",
                    index, process.pid, process.returncode, RESTART_DELAY,
                )  # fmt: skip
                if self._stopping.wait(RESTART_DELAY):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._spawn(index)
                        self.restarts += 1
                    except OSError:
                        log.exception("could not start HTTP front process %d again", index)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the fronts: they finish their requests (the writer still answers) and
        exit; those still running after ``timeout`` seconds are killed."""
        self._stopping.set()
        with self._lock:
            running = [p for p in self.processes if p is not None and p.poll() is None]
            for process in running:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for sock in self._sockets:
            if sock is not None:
                sock.close()


if __name__ == "__main__":
    main()
