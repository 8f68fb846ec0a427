"""Serving the page: the standard library's WSGI server, one thread per request (a workshop has a few tablets)."""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import WSGIApplication

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def page_server(app: WSGIApplication, host: str, port: int) -> WSGIServer:
    """Bound and listening (``port`` 0: any free one, read back from ``server_port``); run ``serve_forever``."""
    return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
