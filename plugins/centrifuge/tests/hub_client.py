# The official centrifuge-python client against the embedded hub. argv: url, framing
# (json | protobuf). Prints JSON lines: connected, subscribed, rpc, publication...; exits after
# the publication whose data has "from".
import asyncio
import json
import sys

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

url, framing = sys.argv[1], sys.argv[2]
proto = framing == "protobuf"


def out(o):
    print(json.dumps(o), flush=True)


def dec(d):
    if isinstance(d, (bytes, bytearray)):
        return json.loads(bytes(d).decode())
    return d


def enc(o):
    return json.dumps(o).encode() if proto else o


done = asyncio.Event()


class Sub(SubscriptionEventHandler):
    async def on_subscribed(self, ctx):
        out({"event": "subscribed", "data": dec(ctx.data)})

    async def on_publication(self, ctx):
        data = dec(ctx.pub.data)
        out({"event": "publication", "data": data})
        if isinstance(data, dict) and "from" in data:
            done.set()


class Events(ClientEventHandler):
    async def on_connected(self, ctx):
        out({"event": "connected", "client": ctx.client, "data": dec(ctx.data)})


async def main():
    client = Client(url, events=Events(), use_protobuf=proto, data=enc({"token": "t"}), proxy=None)
    sub = client.new_subscription("chat", events=Sub())
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=10)
    r = await client.rpc("echo", enc({"n": 1}))
    out({"event": "rpc", "data": dec(r.data)})
    out({"event": "ready"})
    await asyncio.wait_for(done.wait(), 30)
    await client.disconnect()


asyncio.run(main())
