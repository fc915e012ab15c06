// The official centrifuge-js client (npm `centrifuge`, with `ws`) subscribed to one channel,
// reconnecting as it does by itself. argv: url, channel. Prints one JSON line per event:
// connected, subscribed (with recovery flags and position), publication, disconnect-like states.
const dir = process.env.CENTRIFUGE_JS + '/node_modules/';
const WebSocket = require(dir + 'ws');
const { Centrifuge } = require(dir + 'centrifuge');
const [url, channel] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const c = new Centrifuge(url, { websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 300 });
c.on('connected', (ctx) => out({ event: 'connected', client: ctx.client }));
c.on('disconnected', (ctx) => out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }));
c.on('connecting', (ctx) => out({ event: 'connecting', code: ctx.code, reason: ctx.reason }));
const sub = c.newSubscription(channel, { joinLeave: true });
sub.on('subscribed', (ctx) => out({ event: 'subscribed', wasRecovering: ctx.wasRecovering, recovered: ctx.recovered, recoverable: ctx.recoverable, offset: ctx.streamPosition && ctx.streamPosition.offset, epoch: ctx.streamPosition && ctx.streamPosition.epoch }));
sub.on('publication', (ctx) => out({ event: 'publication', data: ctx.data, offset: ctx.offset }));
sub.on('join', (ctx) => out({ event: 'join', client: ctx.info.client }));
sub.on('leave', (ctx) => out({ event: 'leave', client: ctx.info.client }));
sub.subscribe();
c.connect();
process.stdin.on('data', (d) => { if (String(d).includes('quit')) { c.disconnect(); process.exit(0); } });
