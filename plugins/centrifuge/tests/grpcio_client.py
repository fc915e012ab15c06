"""Plays Centrifugo with grpcio (the C-core client): argv[1] is the proxy address, argv[2] a JSON
list of [method, base64 request message, {metadata}, gzip?] (gzip: the request is compressed). Prints one JSON line per call:
{"ok": base64 reply} or {"code": "UNKNOWN", "details": text}."""
import base64
import json
import sys

import grpc

channel = grpc.insecure_channel(sys.argv[1])
for method, body, metadata, *gzip in json.loads(sys.argv[2]):
    call = channel.unary_unary(f"/centrifugal.centrifugo.proxy.CentrifugoProxy/{method}")
    compression = grpc.Compression.Gzip if gzip and gzip[0] else None
    try:
        reply = call(base64.b64decode(body), metadata=list(metadata.items()), timeout=20, compression=compression)
        print(json.dumps({"ok": base64.b64encode(reply).decode()}))
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details()}))
