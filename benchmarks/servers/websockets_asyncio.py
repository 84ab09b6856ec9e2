"""Peer: the websockets package's asyncio server (default event loop), defaults but max_size.

python benchmarks/servers/websockets_asyncio.py --port P
"""

import asyncio
import signal

from _common import HOST, MAX_SIZE, port_arg
from websockets.asyncio.server import serve


async def echo(ws):  # type: ignore[no-untyped-def]
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, HOST, port, max_size=MAX_SIZE):
        await stop


if __name__ == "__main__":
    asyncio.run(main(port_arg(__doc__)))
