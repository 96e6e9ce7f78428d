"""An HTTP reverse proxy for tests that adds `Authorization: Bearer <token>` to every request.

For clients that cannot send a header of their own (the MCP conformance suite): the server keeps requiring a
token, and the client reaches it through this proxy. Everything else passes through unchanged, Host and
Origin included (DNS-rebinding checks must see what the client sent), and responses are streamed as they
come, byte for byte, so an SSE stream is never buffered. One request per connection: the proxy asks the
server for `Connection: close` and tells the client the same, so every request gets its header.
"""

import asyncio
import threading

from tests.faults import free_port

HEAD_LIMIT = 64 * 1024


class BearerProxy:
    """127.0.0.1:<port> forwarded to `target` (host, port) with the token added. Use as a context manager; the port
    is chosen at once, and the target may be set until then (for a server that must know the proxy's address)."""

    def __init__(self, token, target=None):
        self.target = target
        self.token = token
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="bearer-proxy")
        self.server = None

    def __enter__(self):
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _serve(self, client_reader, client_writer):
        upstream_writer = None
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            upstream_writer.write(self.request_head(head))
            await upstream_writer.drain()
            body = asyncio.ensure_future(_pipe(client_reader, upstream_writer))  # the request body, as it comes
            body.add_done_callback(lambda _: upstream_writer.close())  # the client hung up: so does the server's side
            try:
                response_head = await upstream_reader.readuntil(b"\r\n\r\n")
                client_writer.write(_with_connection_close(response_head))
                await client_writer.drain()
                await _pipe(upstream_reader, client_writer)
            finally:
                body.cancel()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a side hung up: close both
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    def request_head(self, head):
        """The request head with the token in place of any Authorization the client sent, and Connection: close."""
        lines = head.split(b"\r\n")
        kept = [line for line in lines[1:] if line and not line.lower().startswith((b"authorization:", b"connection:"))]
        added = [f"Authorization: Bearer {self.token}".encode("latin-1"), b"Connection: close"]
        return b"\r\n".join([lines[0], *kept, *added]) + b"\r\n\r\n"


def _with_connection_close(head):
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


async def _pipe(reader, writer):
    """Copy until the reader ends, each chunk as soon as it arrives."""
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
