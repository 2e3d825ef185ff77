#!/usr/bin/python3
"""A real WebSocket peer for test-websocket.c: python3-websockets (Debian's,
asyncio API) against the daemon's websocket listener, with a line client of
its own on the line listener.

    peer.py URL LINE_PORT MAX_MESSAGE_BYTES [CA_FILE]

URL is ws:// or wss:// (then the server is verified against CA_FILE and the
address). Exits 0 when every check passed, 1 with the reason on stderr;
every wait is bounded."""

import asyncio
import ssl
import sys

import websockets

TIMEOUT = 10


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


class Line:
    """A client of the daemon's line protocol."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self):
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def close(self):
        self.writer.close()
        await self.writer.wait_closed()


class Peer:
    def __init__(self, url, line_port, max_message, ca):
        self.url, self.line_port, self.max_message = url, line_port, max_message
        self.ssl = ssl.create_default_context(cafile=ca) if ca else None

    async def connect(self):
        extra = {"ssl": self.ssl} if self.ssl else {}
        return await websockets.connect(self.url, open_timeout=TIMEOUT, **extra)

    @staticmethod
    async def recv(ws):
        return await asyncio.wait_for(ws.recv(), TIMEOUT)

    async def sync(self, line, readers):
        """WebSocket clients are in from their 101 on; the line client once
        a line it sends reaches them (what came before it is lost)."""
        for k in range(50):
            await line.send(b"sync %d\n" % k)
            try:
                await asyncio.wait_for(readers[0].recv(), 0.2)  # cancelling recv() is safe
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise Failed("the line client was never accepted")
        await line.send(b"sync end\n")
        for r in readers:
            while True:
                m = await self.recv(r)
                check(isinstance(m, str) and m.startswith("sync "), f"during the sync: {m!r}")
                if m == "sync end":
                    break

    async def exchange(self, a, b, watcher, line):
        """Text or binary frames by UTF-8 validity, each way."""
        cases = [
            ("héllo wörld", "héllo wörld", "héllo wörld\n".encode()),
            (b"\xff\xfe\x00", b"\xff\xfe\x00", b"\xff\xfe\x00\n"),
            (b"binary but UTF-8", "binary but UTF-8", b"binary but UTF-8\n"),
            (["frag", "mented"], "fragmented", b"fragmented\n"),
            ("y" * 2570, "y" * 2570, b"y" * 2570 + b"\n"),  # 0x0a0a bytes: the daemon sends 2 fragments
            ("", "", b"\n"),
        ]
        for sent, framed, as_line in cases:
            await a.send(sent)
            for ws in (b, watcher):
                got = await self.recv(ws)
                check(got == framed, f"sent {sent!r}, another WebSocket client got {got!r}")
            got = await line.recv()
            check(got == as_line, f"sent {sent!r}, the line client got {got!r}")
        for as_line, framed in [(b"from the line client\n", "from the line client"), (b"\xc3\x28\n", b"\xc3\x28")]:
            await line.send(as_line)
            for ws in (a, b, watcher):
                got = await self.recv(ws)
                check(got == framed, f"the line client sent {as_line!r}, a WebSocket client got {got!r}")

    async def order(self, a, b, watcher, line, n=100):
        """a, b and the line client send n numbered messages each,
        interleaved; the watcher sees all of them, each sender the others'
        in the watcher's order."""
        for i in range(n):
            await a.send(f"a-{i}")
            await b.send(f"b-{i}")
            await line.send(b"l-%d\n" % i)
        seen = [await self.recv(watcher) for _ in range(3 * n)]
        for who in "abl":
            mine = [m for m in seen if m[0] == who]
            check(mine == [f"{who}-{i}" for i in range(n)], f"{who}'s messages out of order: {mine[:10]}")
        for ws, who in ((a, "a"), (b, "b")):
            got = [await self.recv(ws) for _ in range(2 * n)]
            check(got == [m for m in seen if m[0] != who], f"{who} saw another order than the watcher")
        got = [(await line.recv()).decode().rstrip("\n") for _ in range(2 * n)]
        check(got == [m for m in seen if m[0] != "l"], "the line client saw another order than the watcher")

    async def closed_with(self, ws, code, what):
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        check(ws.close_code == code, f"{what}: closed with {ws.close_code}, not {code}")

    async def run(self):
        line = await Line.open(self.line_port)
        a, b, watcher = await self.connect(), await self.connect(), await self.connect()
        await self.sync(line, [a, b, watcher])
        await self.exchange(a, b, watcher, line)
        await self.order(a, b, watcher, line)
        pong = await a.ping(b"are you there")
        await asyncio.wait_for(pong, TIMEOUT)

        bad = await self.connect()
        await bad.send("two\nlines")
        await self.closed_with(bad, 1003, "a message with an LF")
        big = await self.connect()
        await big.send("x" * self.max_message)
        await self.closed_with(big, 1009, "a message of max_message_bytes")
        # Neither reached anyone: the next message is the next one.
        await b.send("after the errors")
        check(await self.recv(a) == "after the errors", "the errors left something behind")
        check(await line.recv() == b"after the errors\n", "the errors left something behind")

        for ws in (a, b, watcher):
            await asyncio.wait_for(ws.close(), TIMEOUT)
            check(ws.close_code == 1000, f"a normal close answered with {ws.close_code}")
        await line.close()


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    peer = Peer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else None)
    try:
        asyncio.run(asyncio.wait_for(peer.run(), 50))
    except Exception as e:  # every failure, ours or the library's, is the test's
        print(f"peer.py {sys.argv[1]}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"peer.py {sys.argv[1]}: ok")


if __name__ == "__main__":
    main()
