"""A TCP proxy that adds a fixed latency to every response, for the concurrency sweep.

On loopback a request takes microseconds, so any concurrency that keeps the CPUs busy looks
as good as any other. A real S3 endpoint answers in tens of milliseconds, and then requests
in flight decide the throughput. This proxy holds every byte the server sends for DELAY_MS
before passing it on (order kept), so each request/response exchange takes DELAY_MS longer,
as over a network with that round trip.

Usage: python bench/latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
"""

import asyncio
import sys

LISTEN, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000


async def pipe(reader, writer):
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def delayed_pipe(reader, writer):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        try:
            while data := await reader.read(256 * 1024):
                queue.put_nowait((loop.time() + DELAY, data))
        except ConnectionError:
            pass
        queue.put_nowait((loop.time() + DELAY, b""))

    task = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        task.cancel()
        writer.close()


async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pipe(client_reader, up_writer),
        delayed_pipe(up_reader, client_writer),
        return_exceptions=True,
    )
    up_writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
