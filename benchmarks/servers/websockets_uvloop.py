"""Peer: the websockets package's asyncio server on uvloop (``pip install uvloop``).

python benchmarks/servers/websockets_uvloop.py --port P

The same server as websockets_asyncio.py; only the event loop differs. websockets
documents uvloop as a drop-in speed-up, so a skeptic counts it among the peers.
"""

import uvloop
from _common import port_arg
from websockets_asyncio import main

if __name__ == "__main__":
    uvloop.run(main(port_arg(__doc__)))
