"""The server side of the event-loop example in Python
(examples/README.md): one asyncio event loop serving every connection, a
task each, echoing every message::

    python server.py --listen PATH

Prints "listening on PATH" once ready and serves until SIGINT or SIGTERM;
it then prints how many connections it accepted and how many messages it
echoed. Needs the goipc package (see client.py).
"""

import argparse
import asyncio
import signal
import sys

import goipc
import goipc.aio


class Echo:
    """Counts what it serves before the client can see it done (the
    connection before its first answer, a message before its echo): when a
    client has all its answers, the counts include them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.echoed = 0

    async def serve(self, conn: goipc.aio.AsyncConn) -> None:
        async with conn:
            async for msg in conn:  # until the peer closes
                self.echoed += 1
                await conn.send(msg)


async def run(path: str) -> Echo:
    echo = Echo()
    tasks = set()
    async with goipc.aio.listen(path) as ln:
        # A signal closes the listener, which ends the accept below with
        # ClosedError.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, ln.close)
        print("listening on", path, flush=True)
        while True:
            try:
                conn = await ln.accept()
            except goipc.ClosedError:
                break
            except goipc.Error:
                continue  # a failed handshake concerns that one client
            echo.accepted += 1
            task = asyncio.ensure_future(echo.serve(conn))
            tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(tasks.discard)
    # Connections still open are closed with the loop.
    for task in list(tasks):
        task.cancel()
    return echo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="Unix socket path to listen on")
    args = ap.parse_args()
    echo = asyncio.run(run(args.listen))
    print("server python: %d connections accepted, %d messages echoed" % (echo.accepted, echo.echoed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
