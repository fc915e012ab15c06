"""An independent gRPC client (Python's grpcio, C core) for tests/grpc.rs: calls the server on
127.0.0.1:<port> with raw message bytes and prints what it saw as one JSON object."""
import json
import sys

import grpc


def varint(n):
    out = b""
    while n > 0x7F:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def msg(text):
    """service.Message { string msg = 1; }"""
    data = text.encode()
    return b"\x0a" + varint(len(data)) + data if data else b""


def text(message):
    if not message:
        return ""
    n, shift, i = 0, 0, 1
    while True:
        n |= (message[i] & 0x7F) << shift
        i += 1
        if message[i - 1] < 0x80:
            break
        shift += 7
    return message[i:i + n].decode()


def main(port):
    out = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        ping = ch.unary_unary("/service.Echo/Ping")
        resp, call = ping.with_call(msg("hello"), metadata=[("x-request-id", "abc")], timeout=20)
        out["hello"] = text(resp)
        out["ctx"] = json.loads(text(ping(msg("ctx"), metadata=[("x-request-id", "abc")], timeout=20)))

        resp, call = ping.with_call(msg("headers"), timeout=20)
        out["headers"] = dict(call.initial_metadata())
        out["trailers"] = {k: v for k, v in call.trailing_metadata() if not k.startswith("grpc-")}

        out["gzip"] = text(ping(msg("gzip " * 50), compression=grpc.Compression.Gzip, timeout=20))

        for name, req, method in [
            ("details", msg("details"), ping),
            ("throw", msg("throw:boom"), ping),
            ("unknown", b"", ch.unary_unary("/service.Nope/X")),
        ]:
            try:
                method(req, timeout=20)
                out[name] = "no error"
            except grpc.RpcError as e:
                md = dict(e.trailing_metadata() or [])
                details_bin = md.get("grpc-status-details-bin")
                out[name] = {
                    "code": e.code().name,
                    "message": e.details(),
                    "details_bin": details_bin.hex() if details_bin else None,
                }

        stream = ch.unary_stream("/service.Echo/Stream")(msg("stream:3"), timeout=20)
        out["stream"] = [text(m) for m in stream]
        out["stream_trailers"] = {k: v for k, v in stream.trailing_metadata() if not k.startswith("grpc-")}

        out["health"] = ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=20).hex()
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]))
