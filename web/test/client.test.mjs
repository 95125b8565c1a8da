// Tests of parley.js's Client against a scripted edge behind a fake
// WebSocket (no browser): catch-up with a gap filled from history, a push
// past a gap, Resync, a dropped connection resumed from the watermarks.
// Each message must reach onMessage once, in seq order. Run with `node
// --test web/test/` (cmd/parley's TestWebClientCodec does).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../parley.js';

// ---- a small protobuf writer for the edge's side ----

function varint(out, v) {
  let n = BigInt(v);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
}

// pb encodes [[field, value], ...]: a number is a varint, a string or
// bytes are length-delimited, an array is a nested message.
function pb(fields) {
  const out = [];
  for (const [f, v] of fields) {
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') {
      varint(out, f * 8);
      varint(out, Number(v));
    } else {
      const b = typeof v === 'string' ? new TextEncoder().encode(v) : v instanceof Uint8Array ? v : pb(v);
      varint(out, f * 8 + 2);
      varint(out, b.length);
      out.push(...b);
    }
  }
  return Uint8Array.from(out);
}

const frame = (id, field, body) => {
  const p = pb([[1, id], [field, body]].filter(([, v]) => v !== 0));
  const out = [];
  varint(out, p.length);
  return Uint8Array.from([...out, ...p]);
};

// fields reads a message into {field: [raw values]} (varints as Numbers).
function fields(b) {
  const out = {};
  let i = 0;
  const uv = () => {
    let v = 0;
    for (let s = 1; ; s *= 128) {
      if (i >= b.length) throw new Error('truncated');
      const x = b[i++];
      v += (x & 0x7f) * s;
      if (x < 0x80) return v;
    }
  };
  while (i < b.length) {
    const key = uv();
    let v;
    if ((key & 7) === 0) v = uv();
    else {
      const n = uv();
      v = b.subarray(i, (i += n));
    }
    (out[key >> 3] ??= []).push(v);
  }
  return out;
}

const msg = (conv, seq) => [[1, conv], [2, seq], [3, `m_${seq}`], [5, 'u_bo'], [7, 1_700_000_000_000 + seq], [8, `hello ${seq}`]];

// ---- the fake WebSocket: each instance is one connection to `edge` ----

let edge = null; // {onHello(ws, hello), onRequest(ws, id, field, body)}

class FakeWebSocket {
  static OPEN = 1;
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    edge.sockets.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
    }, 1);
  }
  send(b) {
    let i = 0;
    while (b[i] & 0x80) i++;
    const p = b.subarray(i + 1); // less the length prefix
    const f = fields(p);
    const id = f[1]?.[0] ?? 0;
    const field = Number(Object.keys(f).find((k) => k >= 10));
    setTimeout(() => (field === 10 ? edge.onHello(this, fields(f[10][0])) : edge.onRequest(this, id, field, fields(f[field][0]))), 1);
  }
  push(id, field, body) {
    if (this.readyState === 1) this.onmessage?.({ data: frame(id, field, body).buffer });
  }
  close(code = 1006) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason: '' }), 1);
  }
}
globalThis.WebSocket = FakeWebSocket;

const waitFor = async (what, cond, ms = 5_000) => {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('Client: catch-up, gaps, Resync and a reconnect give each message once, in order', async () => {
  const got = [];
  const hellos = [];
  const history = [];
  const all = new Map(); // the conversation's messages on the edge
  for (let seq = 1; seq <= 12; seq++) all.set(seq, msg('c_1', seq));
  edge = {
    sockets: [],
    onHello(ws, hello) {
      const marks = Object.fromEntries((fields(hello[5]?.[0] ?? new Uint8Array())[1] ?? []).map((w) => {
        const f = fields(w);
        return [new TextDecoder().decode(f[1][0]), f[2]?.[0] ?? 0];
      }));
      hellos.push(marks);
      ws.push(1, 11, [[1, 1], [3, 'u_ana'], [4, 'd_1'], [6, Date.now()], [8, 0]]);
      if (hellos.length === 1) {
        // The catch-up: seq 1 and 2 of 5 (truncated).
        ws.push(0, 16, [[1, [[1, 'c_1'], [2, 5], [3, msg('c_1', 1)], [3, msg('c_1', 2)], [4, true]]]]);
      } else {
        // After the reconnect: a repeat and the next one.
        ws.push(0, 16, [[1, [[1, 'c_1'], [2, 10], [3, msg('c_1', 9)], [3, msg('c_1', 10)]]]]);
      }
    },
    onRequest(ws, id, field, body) {
      if (field === 17) { // history, forward after cursor
        const cursor = body[2]?.[0] ?? 0;
        history.push(cursor);
        const page = [...all.keys()].filter((s) => s > cursor && s <= edge.last).slice(0, 3);
        ws.push(id, 18, [[1, 'c_1'], ...page.map((s) => [2, all.get(s)]), [4, edge.last]]);
      } else if (field === 15) { // sync after Resync: a repeat and seq 8
        ws.push(id, 16, [[1, [[1, 'c_1'], [2, 8], [3, msg('c_1', 7)], [3, msg('c_1', 8)]]]]);
      } else if (field === 24) {
        ws.push(id, 25, [[1, 1]]);
      }
    },
    last: 5,
  };
  const c = new Client({
    websocket: { url: 'ws://edge/v1/ws' }, token: async () => 'tok', deviceId: 'd_1',
    watermarks: { c_1: 0 }, onMessage: (m) => got.push(m.seq), minBackoffMs: 5, maxBackoffMs: 20,
    onState: (s) => process.env.DEBUG && console.log(s.state, s.error?.message),
  }).start();
  try {
    await waitFor('1..5', () => got.length >= 5);
    assert.deepEqual(got, [1, 2, 3, 4, 5], 'the catch-up and its gap filled');
    assert.equal(c.transport, 'websocket');

    // A push past a gap: 7 waits for 6, filled from history.
    edge.last = 7;
    edge.sockets[0].push(0, 14, [[1, msg('c_1', 7)]]);
    await waitFor('6, 7', () => got.length >= 7);
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);

    // Resync: the client asks, and the answer's repeat is dropped.
    edge.last = 8;
    edge.sockets[0].push(0, 26, [[1, 'queue overflowed']]);
    await waitFor('8', () => got.length >= 8);

    // The connection drops; the client resumes from its watermark.
    edge.last = 10;
    edge.sockets[0].close();
    await waitFor('9, 10', () => got.length >= 10);
    assert.deepEqual(hellos[1], { c_1: 8 }, 'the second Hello carries the watermark');
    edge.sockets[1].push(0, 14, [[1, msg('c_1', 10)]]); // a late repeat
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(c.watermarks, { c_1: 10 });
    assert.equal(c.connections, 2);
  } finally {
    c.close();
  }
});
