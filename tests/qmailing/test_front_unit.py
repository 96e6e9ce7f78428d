"""qmailing.front on its own, before small asyncio HTTP servers standing in for web processes: routing by the
session id's prefix, round-robin, the front's own 404 and 502, streaming without buffering, a client that
leaves mid-stream, and a stale pooled connection retried."""

import asyncio

import h11
import pytest

from qmailing.front import Backend, Front, worker_of_session


class FakeProcess:
    """An HTTP/1.1 server that answers every request with its name; `/stream` answers a chunk, waits for
    `release`, then the last chunk. Records the requests it saw and whether a stream's client went away."""

    def __init__(self, name):
        self.name = name
        self.seen = []
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.server = None
        self.connections = set()

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def serve(self, reader, writer):
        self.connections.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.EndOfMessage):
                    self.seen.append((request.target.decode(), dict(request.headers).get(b"mcp-session-id")))
                    if request.target == b"/die":  # the process dies with the request in hand
                        writer.transport.abort()
                        return
                    if request.target == b"/stream":
                        writer.write(conn.send(h11.Response(status_code=200, headers=[
                            (b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")])))
                        writer.write(conn.send(h11.Data(data=b"data: first\n\n")))
                        await writer.drain()
                        waiting = asyncio.ensure_future(self.release.wait())
                        gone = asyncio.ensure_future(reader.read(1))
                        done, _ = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
                        if gone in done and not gone.result():
                            waiting.cancel()
                            self.stream_closed.set()
                            return
                        gone.cancel()
                        writer.write(conn.send(h11.Data(data=b"data: last\n\n")))
                        writer.write(conn.send(h11.EndOfMessage()))
                    else:
                        body = self.name.encode()
                        writer.write(conn.send(h11.Response(status_code=200, headers=[
                            (b"content-length", str(len(body)).encode())])))
                        writer.write(conn.send(h11.Data(data=body)))
                        writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()

    def close(self):
        """Gone, as a process that died: no listener, and its open connections cut."""
        self.server.close()
        for writer in self.connections:
            writer.transport.abort()


async def _front(processes):
    front = Front([Backend(index, "127.0.0.1", process.port) for index, process in enumerate(processes)])
    server = await asyncio.start_server(front.serve, "127.0.0.1", 0)
    return front, server, server.sockets[0].getsockname()[1]


async def _get(port, target, headers=(), reader_writer=None):
    """One GET on a (kept) connection: (status, body, (reader, writer))."""
    reader, writer = reader_writer or await asyncio.open_connection("127.0.0.1", port)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{lines}\r\n".encode())
    await writer.drain()
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target=target, headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    status, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, body, (reader, writer)


def test_sessions_go_to_their_process_and_the_rest_round_robin():
    async def scenario():
        processes = [await FakeProcess(f"p{i}").start() for i in range(2)]
        _, server, port = await _front(processes)
        answers = [(await _get(port, "/page"))[1] for _ in range(4)]
        assert sorted(answers) == [b"p0", b"p0", b"p1", b"p1"]
        connection = None
        for _ in range(3):  # one keep-alive connection, the session's process every time
            status, body, connection = await _get(port, "/mcp", [("Mcp-Session-Id", "w1-abc")], connection)
            assert (status, body) == (200, b"p1")
        status, body, connection = await _get(port, "/mcp", [("Mcp-Session-Id", "w0-abc")], connection)
        assert (status, body) == (200, b"p0")
        assert processes[1].seen[-3:] == [("/mcp", b"w1-abc")] * 3
        server.close()
        for process in processes:
            process.close()

    asyncio.run(scenario())


def test_a_dead_process_sessions_get_404_and_the_rest_goes_to_the_live_ones(caplog):
    async def scenario():
        processes = [await FakeProcess(f"p{i}").start() for i in range(2)]
        _, server, port = await _front(processes)
        processes[0].close()
        await processes[0].server.wait_closed()
        status, body, _ = await _get(port, "/mcp", [("Mcp-Session-Id", "w0-abc")])
        assert status == 404 and b'"Session not found"' in body
        assert [(await _get(port, "/page"))[:2] for _ in range(3)] == [(200, b"p1")] * 3
        assert caplog.text.count("web process 0 (127.0.0.1") == 1  # said once, not per request
        processes[1].close()
        await processes[1].server.wait_closed()
        assert (await _get(port, "/page"))[0] == 502
        server.close()

    asyncio.run(scenario())


def test_a_stream_is_passed_on_as_it_comes_and_closed_when_its_client_leaves():
    async def scenario():
        process = await FakeProcess("p0").start()
        _, server, port = await _front([process])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        received = b""
        while b"data: first" not in received:  # before the process has finished its answer
            received += await asyncio.wait_for(reader.read(65536), 5)
        assert b"data: last" not in received
        writer.close()
        await asyncio.wait_for(process.stream_closed.wait(), 5)  # the front closed the upstream connection

        # A stream that runs to its end, on a new connection.
        process.release.set()
        status, body, _ = await _get(port, "/stream")
        assert status == 200 and body == b"data: first\n\ndata: last\n\n"
        server.close()
        process.close()

    asyncio.run(scenario())


def test_a_pooled_connection_the_process_closed_is_replaced():
    async def scenario():
        process = await FakeProcess("p0").start()
        front, server, port = await _front([process])
        assert (await _get(port, "/page"))[:2] == (200, b"p0")
        [(_, pooled_writer, _, _)] = front.backends[0].idle
        pooled_writer.transport.abort()  # as if the process had dropped the idle keep-alive connection
        assert (await _get(port, "/page"))[:2] == (200, b"p0")
        server.close()
        process.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("session_id, worker", [(b"w0-1f", 0), (b"w12-1f", 12), (b"1f2e", None), (b"", None),
                                                (b"xw1-1f", None)])
def test_the_process_index_is_read_from_the_prefix_only(session_id, worker):
    assert worker_of_session(session_id) == worker


def test_a_large_body_behind_expect_100_continue_is_streamed_to_the_process():
    async def scenario():
        process = await FakeProcess("p0").start()
        _, server, port = await _front([process])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        size = 3 * 1024 * 1024  # past what the front holds for a retry
        writer.write(f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {size}\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(b"x" * size)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ") and await reader.readexactly(2) == b"p0"
        assert process.seen == [("/upload", None)]
        writer.close()
        server.close()
        process.close()

    asyncio.run(scenario())


async def _post(port, target, body=b"{}"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return int(head.split()[1])


def test_a_post_whose_process_fails_is_never_sent_to_another_but_a_get_is():
    async def scenario():
        processes = [await FakeProcess(f"p{i}").start() for i in range(2)]
        _, server, port = await _front(processes)
        assert await _post(port, "/die") == 502  # it may have run: the client decides, not the front
        assert [target for process in processes for target, _ in process.seen] == ["/die"]
        status, _, _ = await _get(port, "/die")  # a GET is safe to send again: the next process gets it
        assert status == 502 and sorted(target for process in processes for target, _ in process.seen) == \
            ["/die", "/die", "/die"]
        server.close()
        for process in processes:
            process.close()

    asyncio.run(scenario())


def test_an_http_1_0_request_without_host_gets_a_400_from_the_front():
    async def scenario():
        process = await FakeProcess("p0").start()
        _, server, port = await _front([process])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.split()[1] == b"400" and process.seen == []
        writer.close()
        server.close()
        process.close()

    asyncio.run(scenario())
