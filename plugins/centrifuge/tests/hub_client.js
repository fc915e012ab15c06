// The official centrifuge-js client (npm `centrifuge`, with `ws`) against the embedded hub.
// argv: url, framing (json | protobuf), scenario (chat | token:<jwt> | refresh:<secret>:<user>
// | refused). `refresh` signs its own HS256 tokens, each valid for 2 s, in `getToken`.
// Prints one JSON line per event; the test drives it through stdin ("quit").
const dir = process.env.CENTRIFUGE_JS + '/node_modules/';
const WebSocket = require(dir + 'ws');
const [url, framing, scenario] = process.argv.slice(2);
const { Centrifuge } = require(dir + 'centrifuge' + (framing === 'protobuf' ? '/build/protobuf' : ''));

// Protobuf clients carry bytes: JSON text in, JSON text out.
const enc = (o) => (framing === 'protobuf' ? new TextEncoder().encode(JSON.stringify(o)) : o);
const dec = (d) => {
  if (d === undefined || d === null) return null;
  if (framing !== 'protobuf') return d;
  const text = new TextDecoder().decode(d);
  try { return JSON.parse(text); } catch (e) { return text; }
};
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const opts = { websocket: WebSocket, name: 'node', minReconnectDelay: 100, maxReconnectDelay: 200 };
if (scenario.startsWith('token:')) opts.token = scenario.slice(6);
else if (scenario.startsWith('refresh:')) {
  const [, secret, sub] = scenario.split(':');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  opts.getToken = async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub, exp, channels: ['clock'] });
    out({ event: 'token', exp });
    return body + '.' + require('crypto').createHmac('sha256', secret).update(body).digest('base64url');
  };
}
else if (scenario.startsWith('cmd:')) opts.data = enc({ cmd: scenario.slice(4) });
else opts.data = enc({ token: 't' });
const c = new Centrifuge(url, opts);
c.on('connected', (ctx) => out({ event: 'connected', client: ctx.client, transport: ctx.transport, data: dec(ctx.data) }));
c.on('disconnected', (ctx) => { out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }); process.exit(0); });
c.on('error', (ctx) => out({ event: 'error', type: ctx.type, message: String(ctx.error && ctx.error.message) }));
c.on('subscribed', (ctx) => out({ event: 'server_subscribed', channel: ctx.channel }));
c.on('publication', (ctx) => out({ event: 'server_publication', channel: ctx.channel, data: dec(ctx.data) }));

if (scenario === 'chat') {
  const sub = c.newSubscription('chat');
  sub.on('publication', (ctx) => out({ event: 'publication', channel: ctx.channel, data: dec(ctx.data), offset: ctx.offset, user: ctx.info && ctx.info.user }));
  sub.on('subscribed', async (ctx) => {
    out({ event: 'subscribed', data: dec(ctx.data) });
    try {
      const r = await c.rpc('echo', enc({ n: 1 }));
      out({ event: 'rpc', data: dec(r.data) });
      try {
        await c.rpc('echo', enc({ cmd: 'error' }));
      } catch (e) {
        out({ event: 'rpc_error', code: e.code, message: e.message, temporary: !!e.temporary });
      }
      await sub.publish(enc({ text: 'hi' }));
      out({ event: 'ready' });
    } catch (e) {
      out({ event: 'failed', error: String(e && (e.message || e.code)) });
    }
  });
  sub.subscribe();
}
c.connect();
process.stdin.on('data', (d) => { if (String(d).includes('quit')) { c.disconnect(); process.exit(0); } });
