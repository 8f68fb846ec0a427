"""Fault injection on real connections (not mocks): the services behind these are the real Mosquitto and the
real InfluxDB, and each proxy only makes them unreachable, silent or refusing on command.

* ``TcpProxy``: forwards a TCP port; ``cut()`` makes it a network partition (bytes stop flowing both ways,
  new connections hang), ``mend()`` ends it (the held connections are reset, as a rebooted link would).
* ``HttpFaultProxy``: forwards HTTP to InfluxDB; ``refuse(status)`` answers every request as InfluxDB does
  when the database is missing (404) or the credentials are wrong (401), until ``forward()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from ftel.stack import free_port

INFLUX_REFUSALS: dict[int, bytes] = {
    404: b'{"error":"database not found: \\"ftel\\""}',
    401: b'{"error":"authorization failed"}',
}


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while self._cut.is_set():  # noqa: ASYNC110 (set from the test thread) a partition: the connection hangs
                await asyncio.sleep(0.1)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self._cut.is_set():
                    continue  # lost on the partitioned link
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def cut(self) -> None:
        self._cut.set()

    def mend(self) -> None:
        async def reset() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._call(reset())
        self._cut.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.mend()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class HttpFaultProxy:
    def __init__(self, target_url: str) -> None:
        self.refusing: int | None = None
        self.refused = 0
        proxy = self
        upstream = httpx.Client(base_url=target_url, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = proxy.refusing
                if status is not None and not self.path.startswith("/ping"):
                    proxy.refused += 1
                    self._answer(status, INFLUX_REFUSALS.get(status, b'{"error":"refused"}'), "application/json")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    response = upstream.request(self.command, self.path, content=body, headers=headers)
                except httpx.HTTPError:
                    self._answer(502, b"upstream unreachable", "text/plain")
                    return
                self._answer(response.status_code, response.content, response.headers.get("Content-Type", ""))

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._upstream = upstream
        self._thread = threading.Thread(target=self._server.serve_forever, name="influx-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse(self, status: int) -> None:
        self.refusing = status

    def forward(self) -> None:
        self.refusing = None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()
