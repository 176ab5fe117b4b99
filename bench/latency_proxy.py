"""A TCP proxy that delays every byte by a fixed time each way: network latency between parity and
DynamoDB Local where netem is not available (no network namespaces here, see STACK.md).

Run as its own process, so its work does not share parity's interpreter (or its GIL):

    python -m bench.latency_proxy --target 127.0.0.1:8000 --delay-ms 2.5

prints `listening <port>` on stdout once it accepts connections. `--delay-ms` is one way: each
chunk is forwarded `delay` after it arrived, in order, so a request/response round trip gains
twice the delay (2.5 ms each way = the "about 5 ms" of an in-region client). Bandwidth is not
limited: chunks are delayed, not paced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        loop = asyncio.get_running_loop()
        while True:
            at, data = await queue.get()
            if not data:
                break
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    task = asyncio.create_task(forward())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                break
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()


async def _serve(target_host: str, target_port: int, delay: float, port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_pipe(client_r, up_w, delay), _pipe(up_r, client_w, delay))
        except OSError as exc:  # a reset connection ends only that connection
            print(f"connection ended: {type(exc).__name__}", file=sys.stderr)
        finally:
            for w in (client_w, up_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class Proxy:
    """A running proxy process (started by `start`)."""

    process: subprocess.Popen[str]
    port: int
    delay_ms: float

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(target_endpoint: str, delay_ms_one_way: float) -> Proxy:
    """A proxy in front of `target_endpoint` (http://host:port), delaying each way."""
    hostport = target_endpoint.split("://", 1)[-1].rstrip("/")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_proxy", "--target", hostport, "--delay-ms", str(delay_ms_one_way)],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    line = process.stdout.readline()
    if not line.startswith("listening ") or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    return Proxy(process, int(line.split()[1]), delay_ms_one_way)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__)
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=2.5, help="delay each way, milliseconds")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host or "127.0.0.1", int(port), args.delay_ms / 1000, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
