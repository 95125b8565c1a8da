// parley.js: a minimal browser client for parley device sessions over
// WebTransport, with no dependencies. It speaks the protocol of
// syncproto/README.md: on the session's first bidirectional stream, frames
// of a uvarint length and a protobuf parley.v1.Frame; Hello first, Welcome
// back, then requests matched to responses by Frame.id, and live messages
// (Deliver, id 0) from the edge.
//
//	import { connect, fetchCertHashes } from './parley.js';
//	const session = await connect({
//	  url: 'https://127.0.0.1:7443/v1/wt',
//	  certHashes: await fetchCertHashes('http://127.0.0.1:8080/.well-known/parley/cert-hashes'),
//	  token, deviceId,
//	});
//	session.onMessage((m) => console.log(m.seq, new TextDecoder().decode(m.body)));
//	const ack = await session.send(convId, 'hello');
//	session.onTyping((t) => console.log(t.userId, t.typing ? 'is typing' : 'stopped'));
//	await session.typing(convId, true); // a WebTransport datagram
//
// Two layers: Session is one welcomed session over one transport
// (WebTransport, or WebSocket: connect, connectWebSocket), with requests
// matched to answers; Client (below) is what an app uses, and mirrors the Go
// SDK (client/): it picks WebTransport and falls back to WebSocket by
// itself, reconnects with jittered backoff, says Hello with its watermarks
// and resumes, answers Resync, fills gaps from history, refreshes its
// token, and hands each message to the app once, in seq order.

// Numbers: 64-bit fields (seq, ts_unix_ms, ids) are Numbers when exact
// (|v| <= 2^53 - 1) and BigInts beyond, never silently rounded.

export const PROTOCOL_VERSION = 1;

// The largest frame this client reads: syncproto.MaxFrameSize (16 MiB).
const MAX_READ_FRAME = 16 << 20;

// Error code names by number (parley.v1.Code).
export const CODES = [
  'ok', 'malformed', 'unauthenticated', 'token_expired', 'forbidden', 'not_found', 'conflict',
  'too_large', 'rate_limited', 'unsupported_version', 'unavailable', 'internal', 'timeout',
  'invalid_argument', 'not_member', 'refresh_token_reused', 'revoked',
];
const MALFORMED = 1;
const TOO_LARGE = 7;
const UNAVAILABLE = 10;

// ParleyError is an error of the protocol: one the edge sent (Frame.error)
// or one of the same codes raised here (a malformed frame, a closed session).
export class ParleyError extends Error {
  constructor(code, message, retryAfterMs = 0) {
    const name = CODES[code] ?? `code_${code}`;
    super(`parley: ${name}: ${message}`);
    this.name = 'ParleyError';
    this.code = code;
    this.codeName = name;
    this.retryAfterMs = retryAfterMs;
  }
}

const malformed = (msg) => new ParleyError(MALFORMED, msg);

// ---- protobuf: varints ----

const U64_MAX = (1n << 64n) - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// appendVarint appends v (a non-negative integer Number or BigInt below
// 2^64) to out, an array of bytes.
function appendVarint(out, v) {
  let n = BigInt(v); // throws for fractions
  if (n < 0n || n > U64_MAX) throw new RangeError(`parley: varint out of range: ${v}`);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
}

// Conversions of a decoded varint (a BigInt below 2^64) to a field's type.
const toU64 = (v) => (v <= SAFE ? Number(v) : v);
const toI64 = (v) => {
  const s = BigInt.asIntN(64, v); // two's complement, as int64 is sent
  return s >= -SAFE && s <= SAFE ? Number(s) : s;
};
const toU32 = (v) => Number(BigInt.asUintN(32, v));
const toI32 = (v) => Number(BigInt.asIntN(32, v));

// ---- protobuf: writing ----

const utf8 = new TextEncoder();

// Writer builds one message. Zero values are not written (proto3), except
// for sub-messages, whose presence can matter (Hello.position).
class Writer {
  constructor() {
    this.out = [];
  }
  tag(field, wire) {
    appendVarint(this.out, field * 8 + wire);
  }
  varint(field, v) {
    if (v) {
      this.tag(field, 0);
      appendVarint(this.out, v);
    }
    return this;
  }
  bytes(field, b) {
    if (b && b.length) this.message(field, b);
    return this;
  }
  string(field, s) {
    return this.bytes(field, s ? utf8.encode(s) : null);
  }
  message(field, b) {
    this.tag(field, 2);
    appendVarint(this.out, b.length);
    for (const x of b) this.out.push(x);
    return this;
  }
  finish() {
    return Uint8Array.from(this.out);
  }
}

// ---- protobuf: reading ----

const utf8d = new TextDecoder('utf-8', { fatal: true });

class Reader {
  constructor(b) {
    this.b = b;
    this.pos = 0;
  }
  varint() {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.b.length) throw malformed('truncated varint');
      const x = this.b[this.pos++];
      v |= BigInt(x & 0x7f) << BigInt(7 * i);
      if (x < 0x80) {
        if (v > U64_MAX) throw malformed('varint overflows 64 bits');
        return v;
      }
    }
    throw malformed('varint longer than 10 bytes');
  }
  length() {
    const n = this.varint();
    if (n > BigInt(this.b.length - this.pos)) throw malformed('field longer than its message');
    return Number(n);
  }
  bytes() {
    const n = this.length();
    this.pos += n;
    return this.b.subarray(this.pos - n, this.pos);
  }
  skip(wire) {
    switch (wire) {
      case 0: this.varint(); return;
      case 1: this.advance(8); return;
      case 2: this.bytes(); return;
      case 5: this.advance(4); return;
      default: throw malformed(`wire type ${wire}`);
    }
  }
  advance(n) {
    if (this.pos + n > this.b.length) throw malformed('truncated field');
    this.pos += n;
  }
}

// Field types for decode: the wire type, the proto3 default, a reader.
const T = {
  u32: { wire: 0, zero: 0, read: (r) => toU32(r.varint()) },
  u64: { wire: 0, zero: 0, read: (r) => toU64(r.varint()) },
  i64: { wire: 0, zero: 0, read: (r) => toI64(r.varint()) },
  enum: { wire: 0, zero: 0, read: (r) => toI32(r.varint()) },
  bool: { wire: 0, zero: false, read: (r) => r.varint() !== 0n },
  string: {
    wire: 2, zero: '',
    read: (r) => {
      try {
        return utf8d.decode(r.bytes());
      } catch {
        throw malformed('string field is not UTF-8');
      }
    },
  },
  bytes: { wire: 2, zero: new Uint8Array(0), read: (r) => r.bytes().slice() },
};
const msg = (schema) => ({ wire: 2, zero: null, read: (r) => decode(r.bytes(), schema) });
const list = (t) => ({ ...t, repeated: true });

// decode reads a message by schema ({number: [name, type]}), skipping
// unknown fields and known fields of an unexpected wire type, as protobuf
// does.
function decode(b, schema) {
  const out = {};
  for (const [name, t] of Object.values(schema)) out[name] = t.repeated ? [] : t.zero;
  const r = new Reader(b);
  while (r.pos < b.length) {
    const key = r.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0 || key > 0xffffffffn) throw malformed(`field number ${key >> 3n}`);
    const f = schema[field];
    if (!f || f[1].wire !== wire) {
      r.skip(wire);
      continue;
    }
    const [name, t] = f;
    if (t.repeated) out[name].push(t.read(r));
    else out[name] = t.read(r);
  }
  return out;
}

// ---- the messages this client reads (see syncproto/proto/parley/v1) ----

const WELCOME = {
  1: ['version', T.u32], 2: ['sessionId', T.string], 3: ['userId', T.string], 4: ['deviceId', T.string],
  5: ['workspaceId', T.string], 6: ['serverTimeUnixMs', T.i64], 7: ['maxFrameSize', T.u32],
  8: ['keepaliveMs', T.u32], 9: ['tokenExpiresUnixMs', T.i64],
};
const SEND_ACK = {
  1: ['convId', T.string], 2: ['seq', T.u64], 3: ['msgId', T.string], 4: ['tsUnixMs', T.i64],
  5: ['clientMsgId', T.string], 6: ['duplicate', T.bool],
};
// Attachments are decoded as metadata only: fetching their bytes is the
// attachments module's (not built yet).
const ATTACHMENT = {
  1: ['id', T.string], 2: ['name', T.string], 3: ['contentType', T.string], 4: ['size', T.u64], 5: ['meta', T.bytes],
};
const MESSAGE = {
  1: ['convId', T.string], 2: ['seq', T.u64], 3: ['msgId', T.string], 4: ['clientMsgId', T.string],
  5: ['senderUserId', T.string], 6: ['senderDeviceId', T.string], 7: ['tsUnixMs', T.i64],
  8: ['body', T.bytes], 9: ['contentType', T.string], 10: ['attachments', list(msg(ATTACHMENT))], 11: ['kind', T.enum],
};
const RECEIPT_UPDATE = {
  1: ['convId', T.string], 2: ['userId', T.string], 3: ['deviceId', T.string], 4: ['type', T.enum],
  5: ['seq', T.u64], 6: ['count', T.u32], 7: ['atUnixMs', T.i64],
};
const PRESENCE = { 1: ['userId', T.string], 2: ['online', T.bool], 3: ['lastSeenUnixMs', T.i64] };
const TYPING_BODY = { 1: ['convId', T.string], 2: ['userId', T.string], 3: ['typing', T.bool], 4: ['ttlMs', T.u32] };
const DELIVER = {
  1: ['messages', list(msg(MESSAGE))], 2: ['receipts', list(msg(RECEIPT_UPDATE))],
  3: ['presence', list(msg(PRESENCE))], 4: ['typing', list(msg(TYPING_BODY))],
};
const DELTA = {
  1: ['convId', T.string], 2: ['lastSeq', T.u64], 3: ['messages', list(msg(MESSAGE))],
  4: ['truncated', T.bool], 5: ['readSeq', T.u64], 6: ['unread', T.u64],
};
const SYNC_RESPONSE = {
  1: ['changed', list(msg(DELTA))], 2: ['token', T.bytes], 3: ['unreadTotal', T.u64],
  4: ['unreadConversations', T.u32], 5: ['presence', list(msg(PRESENCE))],
};
const HISTORY_RESPONSE = {
  1: ['convId', T.string], 2: ['messages', list(msg(MESSAGE))], 3: ['nextCursor', T.u64], 4: ['lastSeq', T.u64],
};
const RECEIPT_ACK = { 1: ['convId', T.string], 2: ['type', T.enum], 3: ['seq', T.u64] };
const ERROR = { 1: ['code', T.enum], 2: ['message', T.string], 3: ['retryAfterMs', T.u32] };
const PONG = { 1: ['nonce', T.u64] };
const RESYNC = { 1: ['reason', T.string] };
const GO_AWAY = { 1: ['reason', T.string], 2: ['alternatives', list(T.string)] };
const REAUTH_ACK = { 1: ['tokenExpiresUnixMs', T.i64], 2: ['serverTimeUnixMs', T.i64] };

// Frame bodies this client reads, by field number of the Frame oneof.
const BODIES = {
  11: ['welcome', WELCOME], 13: ['sendAck', SEND_ACK], 14: ['deliver', DELIVER],
  16: ['syncResponse', SYNC_RESPONSE], 18: ['historyResponse', HISTORY_RESPONSE],
  20: ['receiptUpdate', RECEIPT_UPDATE], 21: ['presence', PRESENCE], 22: ['typing', TYPING_BODY],
  23: ['error', ERROR], 25: ['pong', PONG], 26: ['resync', RESYNC], 27: ['goAway', GO_AWAY],
  28: ['receiptAck', RECEIPT_ACK], 31: ['reauthAck', REAUTH_ACK],
};

// Frame fields this client writes.
export const F = {
  HELLO: 10, SEND: 12, SYNC_REQUEST: 15, HISTORY_REQUEST: 17, RECEIPT: 19, TYPING: 22, PING: 24,
  PRESENCE_SUBSCRIBE: 29, REAUTH: 30,
};
const { HELLO, SEND, TYPING, PING } = F;

// Receipt types (parley.v1.ReceiptType) and history directions.
export const DELIVERED = 1;
export const READ = 2;
export const BACKWARD = 0;
export const FORWARD = 1;

// decodeFrame returns {id, type, body}; type is null for a body this client
// does not read (which the protocol says to skip).
export function decodeFrame(b) {
  const f = { id: 0, type: null, body: null };
  const r = new Reader(b);
  while (r.pos < b.length) {
    const key = r.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0 || key > 0xffffffffn) throw malformed(`field number ${key >> 3n}`);
    if (field === 1 && wire === 0) {
      f.id = toU64(r.varint());
    } else if (BODIES[field] && wire === 2) {
      const [type, schema] = BODIES[field];
      f.type = type; // a oneof: the last body wins
      f.body = decode(r.bytes(), schema);
    } else if (field >= 10 && wire === 2) {
      r.skip(wire); // another body: this client does not read it
      f.type = null;
      f.body = null;
    } else {
      r.skip(wire);
    }
  }
  return f;
}

// encodeFrame returns the length-prefixed bytes of Frame{id, <field>: body}.
export function encodeFrame(id, field, body) {
  const payload = new Writer().varint(1, id).message(field, body).finish();
  const out = [];
  appendVarint(out, payload.length);
  const b = new Uint8Array(out.length + payload.length);
  b.set(out);
  b.set(payload, out.length);
  return b;
}

// encodeTyping returns a Typing body: this device is (or stopped) typing
// in convId; the indicator lapses after ttlMs (0: the edge's default, 5 s;
// at most 10 s) unless renewed. The edge fills in who is typing.
export function encodeTyping({ convId, typing, ttlMs = 0 }) {
  return new Writer().string(1, convId).varint(3, typing ? 1 : 0).varint(4, ttlMs).finish();
}

export function encodeHello({ token, deviceId, clientName, watermarks }) {
  // Fields in number order, as protobuf writes them.
  const w = new Writer()
    .varint(1, PROTOCOL_VERSION) // min_version
    .varint(2, PROTOCOL_VERSION) // max_version
    .string(3, token)
    .string(4, deviceId);
  if (watermarks) {
    // SyncPosition{watermarks: [Watermark{conv_id, seq}]}: the edge sends
    // a catch-up SyncResponse after Welcome; without it, live frames only.
    w.message(5, encodePosition(watermarks));
  }
  return w.string(6, clientName).finish();
}

export function encodeSend({ convId, clientMsgId, body, contentType }) {
  return new Writer().string(1, convId).string(2, clientMsgId).bytes(3, body).string(4, contentType).finish();
}

// encodePosition is a SyncPosition of watermarks ({convId: seq} or a Map).
function encodePosition(watermarks) {
  const pos = new Writer();
  const entries = watermarks instanceof Map ? watermarks.entries() : Object.entries(watermarks);
  for (const [conv, seq] of entries) pos.message(1, new Writer().string(1, conv).varint(2, seq).finish());
  return pos.finish();
}

export function encodeSyncRequest({ watermarks = {}, perConversationLimit = 0 }) {
  return new Writer().message(1, encodePosition(watermarks)).varint(2, perConversationLimit).finish();
}

export function encodeHistory({ convId, cursor = 0, limit = 0, direction = BACKWARD }) {
  return new Writer().string(1, convId).varint(2, cursor).varint(3, limit).varint(4, direction).finish();
}

export function encodeReceipt({ convId, seq, type }) {
  return new Writer().string(1, convId).varint(2, seq).varint(3, type).finish();
}

export function encodePresenceSubscribe({ userIds = [] }) {
  const w = new Writer();
  for (const id of userIds) w.string(1, id);
  return w.finish();
}

export function encodeReauth({ token }) {
  return new Writer().string(1, token).finish();
}

export function encodePing({ nonce }) {
  return new Writer().varint(1, nonce).finish();
}

// ---- framing over a stream ----

// FrameReader reads length-prefixed frames from a ReadableStream of bytes.
// Memory grows with the bytes that arrive, not with what a prefix claims.
class FrameReader {
  constructor(readable, maxSize) {
    this.reader = readable.getReader();
    this.maxSize = maxSize;
    this.buf = new Uint8Array(0);
  }
  // fill reads until at least n bytes are buffered; false at end of stream.
  async fill(n) {
    while (this.buf.length < n) {
      const { value, done } = await this.reader.read();
      if (done) return false;
      const b = new Uint8Array(this.buf.length + value.length);
      b.set(this.buf);
      b.set(value, this.buf.length);
      this.buf = b;
    }
    return true;
  }
  // next returns the next decoded frame, or null when the stream ended
  // cleanly between frames.
  async next() {
    let n = 0n;
    let i = 0;
    for (;;) {
      if (i >= this.buf.length && !(await this.fill(i + 1))) {
        if (i === 0) return null;
        throw malformed('stream ended inside a frame');
      }
      const x = this.buf[i++];
      n |= BigInt(x & 0x7f) << BigInt(7 * (i - 1));
      if (x < 0x80) {
        if (x === 0 && i > 1) throw malformed('frame length is not minimally encoded');
        break;
      }
      if (i === 10) throw malformed('frame length longer than 10 bytes');
    }
    if (n === 0n) throw malformed('empty frame');
    if (n > BigInt(this.maxSize)) throw new ParleyError(TOO_LARGE, `frame of ${n} bytes, limit ${this.maxSize}`);
    const end = i + Number(n);
    if (!(await this.fill(end))) throw malformed('stream ended inside a frame');
    const payload = this.buf.slice(i, end);
    this.buf = this.buf.subarray(end);
    return decodeFrame(payload);
  }
  cancel() {
    this.reader.cancel().catch(() => {});
  }
}

// readFrames returns a reader of the frames on readable (a ReadableStream
// of bytes): its next() resolves with {id, type, body}, or null at a clean
// end, and rejects with a ParleyError on bad framing.
export function readFrames(readable, maxSize = MAX_READ_FRAME) {
  return new FrameReader(readable, maxSize);
}

// ---- certificate hashes ----

function fromBase64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

// toHash turns a base64 string, bytes, or {algorithm, value} with a base64
// or byte value into a WebTransportHash.
function toHash(h) {
  let algorithm = 'sha-256';
  let value = h;
  if (h && typeof h === 'object' && 'value' in h) {
    algorithm = h.algorithm ?? algorithm;
    value = h.value;
  }
  if (typeof value === 'string') value = fromBase64(value);
  if (value instanceof ArrayBuffer) value = new Uint8Array(value);
  if (!(value instanceof Uint8Array) || (algorithm === 'sha-256' && value.length !== 32)) {
    throw new TypeError('parley: a certificate hash is 32 bytes of SHA-256 (bytes or base64)');
  }
  return { algorithm, value };
}

// fetchCertHashes reads an edge's /.well-known/parley/cert-hashes and
// returns its hashes ready for connect's certHashes.
export async function fetchCertHashes(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(`parley: ${url}: HTTP ${r.status}`);
  const { hashes } = await r.json();
  return hashes.map(toHash);
}

// ---- transports ----

// A transport carries frames for one session: writeFrame(bytes) (one
// length-prefixed frame), next() (the next frame, or null at a clean end),
// datagram(bytes) (true when sent as a datagram; false when the transport
// has none, and the caller writes a frame instead), onDatagram(cb), close().

// openWebTransport opens a WebTransport session and its control stream.
async function openWebTransport(url, certHashes, timeoutMs) {
  const options = {};
  if (certHashes && certHashes.length) options.serverCertificateHashes = certHashes.map(toHash);
  const wt = new WebTransport(url, options);
  wt.closed.catch(() => {}); // how it ended is reported through the session
  let timer;
  try {
    await Promise.race([
      wt.ready,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const frames = readFrames(stream.readable);
    return {
      kind: 'webtransport',
      writeFrame: (b) => writer.write(b),
      next: () => frames.next(),
      datagram: async (b) => {
        const dg = wt.datagrams;
        if (!dg || (dg.maxDatagramSize ?? Infinity) < b.length) return false;
        const w = (dg.createWritable ? dg.createWritable() : dg.writable).getWriter();
        try {
          await w.write(b);
        } finally {
          w.releaseLock();
        }
        return true;
      },
      onDatagram: (cb) => readDatagrams(wt, cb),
      close: () => {
        frames.cancel();
        try {
          wt.close({ closeCode: 0, reason: '' });
        } catch {
          // already closed
        }
      },
    };
  } catch (e) {
    try {
      wt.close({ closeCode: 0, reason: '' });
    } catch {
      // already closed
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

// decodeOne decodes b, a datagram or WebSocket message: exactly one
// length-prefixed frame (syncproto.DecodeFrame).
export function decodeOne(b) {
  let n = 0;
  let i = 0;
  for (; i < b.length && b[i] & 0x80 && i < 9; i++) n += (b[i] & 0x7f) * 2 ** (7 * i);
  if (i >= b.length || b[i] & 0x80) throw malformed('a frame length is cut short or too long');
  n += b[i] * 2 ** (7 * i);
  if (n === 0) throw malformed('empty frame');
  if (n !== b.length - i - 1) throw malformed('not exactly one frame');
  return decodeFrame(b.subarray(i + 1));
}

// readDatagrams passes each datagram's one frame to cb until the session
// ends; a datagram that is not exactly one frame is dropped.
async function readDatagrams(wt, cb) {
  const dg = wt.datagrams;
  if (!dg) return;
  const reader = dg.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      try {
        cb(decodeOne(value));
      } catch {
        // a bad datagram (or not exactly one frame): dropped
      }
    }
  } catch {
    // the session ended
  } finally {
    reader.releaseLock();
  }
}

// WS_SUBPROTOCOL is syncproto/wsframe's: each binary message is one
// length-prefixed frame.
export const WS_SUBPROTOCOL = 'parley.v1';

// openWebSocket opens a WebSocket to url (ws://host:port/v1/ws).
function openWebSocket(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, WS_SUBPROTOCOL);
    ws.binaryType = 'arraybuffer';
    const queue = [];
    const waiting = [];
    let ended = null; // null, or the error (or clean end) it ended with
    const push = (item) => {
      const w = waiting.shift();
      if (w) w(item);
      else queue.push(item);
    };
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve({
        kind: 'websocket',
        writeFrame: async (b) => {
          if (ws.readyState !== WebSocket.OPEN) throw new ParleyError(UNAVAILABLE, 'the WebSocket is closed');
          ws.send(b);
        },
        next: () => {
          if (queue.length) return Promise.resolve(queue.shift()).then(unwrap);
          if (ended) return Promise.resolve(ended).then(unwrap);
          return new Promise((r) => waiting.push(r)).then(unwrap);
        },
        datagram: async () => false,
        onDatagram: () => {},
        close: () => ws.close(1000),
      });
    };
    const unwrap = (item) => {
      if (item.error) throw item.error;
      return item.frame;
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        push({ error: malformed('a text message on the WebSocket') });
        return;
      }
      try {
        push({ frame: decodeOne(new Uint8Array(ev.data)) });
      } catch (e) {
        push({ error: e });
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      // 4000 + code: the edge's error code (4015: revoked).
      const code = ev.code >= 4000 && ev.code < 4100 ? ev.code - 4000 : 0;
      ended = code ? { error: new ParleyError(code, ev.reason || 'the edge closed the WebSocket') } : { frame: null };
      while (waiting.length) waiting.shift()(ended);
      reject(new Error(`WebSocket closed (${ev.code})`));
    };
    ws.onerror = () => {}; // onclose follows
  });
}

// hello says Hello on t and resolves with the Welcome.
async function hello(t, { token, deviceId, clientName, watermarks }) {
  await t.writeFrame(encodeFrame(1, HELLO, encodeHello({ token, deviceId, clientName, watermarks })));
  const f = await t.next();
  if (f === null) throw new ParleyError(UNAVAILABLE, 'the edge closed the session before Welcome');
  if (f.type === 'error') throw fromWire(f.body);
  if (f.type !== 'welcome' || f.id !== 1) throw malformed(`expected welcome, got ${f.type ?? 'an unknown frame'}`);
  return f.body;
}

// ---- sessions ----

// connect opens a WebTransport session to url (https://host:port/v1/wt),
// says Hello and resolves with a Session once the edge answers Welcome. It
// rejects with a ParleyError when the edge refuses the Hello.
//
// certHashes pins the edge's certificate (see fetchCertHashes); without
// them the browser checks the certificate against its roots. watermarks
// ({convId: seq}, {} for none) asks for a catch-up of what came after them;
// without it the session carries live messages only.
//
// onMessage, onFrame and onTyping (see Session) are listeners registered
// before the session reads its first frame.
export async function connect({
  url, certHashes, token, deviceId = '', clientName = 'parley.js', watermarks, onMessage, onFrame, onTyping, timeoutMs = 10_000,
} = {}) {
  let t;
  try {
    t = await openWebTransport(url, certHashes, timeoutMs);
  } catch (e) {
    throw new ParleyError(UNAVAILABLE, `WebTransport to ${url}: ${e?.message ?? e}`);
  }
  return welcomed(t, { token, deviceId, clientName, watermarks, onMessage, onFrame, onTyping });
}

// connectWebSocket is connect over a WebSocket (url ws://host:port/v1/ws).
export async function connectWebSocket({
  url, token, deviceId = '', clientName = 'parley.js', watermarks, onMessage, onFrame, onTyping, timeoutMs = 10_000,
} = {}) {
  let t;
  try {
    t = await openWebSocket(url, timeoutMs);
  } catch (e) {
    throw new ParleyError(UNAVAILABLE, `WebSocket to ${url}: ${e?.message ?? e}`);
  }
  return welcomed(t, { token, deviceId, clientName, watermarks, onMessage, onFrame, onTyping });
}

async function welcomed(t, opts) {
  try {
    return new Session(t, await hello(t, opts), opts);
  } catch (e) {
    t.close();
    if (e instanceof ParleyError) throw e;
    throw new ParleyError(UNAVAILABLE, `${t.kind}: ${e?.message ?? e}`);
  }
}

function fromWire(e) {
  return new ParleyError(e.code, e.message, e.retryAfterMs);
}

// Session is one welcomed session. Its methods may be called at any time;
// once it ends, they fail with the reason it ended.
export class Session {
  #t;
  #nextId = 1; // 1 was the Hello
  #pending = new Map(); // id -> {resolve, reject}
  #listeners = new Set();
  #typingListeners = new Set();
  #frameListeners = new Set();
  #marks = new Map(); // conv -> highest seq handed to listeners
  #keepalive = null;
  #err = null;

  // listeners ({onMessage, onFrame, onTyping}) are registered before the
  // first frame is read, so none of the catch-up is missed.
  constructor(t, welcome, { onMessage, onFrame, onTyping } = {}) {
    this.#t = t;
    if (onMessage) this.#listeners.add(onMessage);
    if (onFrame) this.#frameListeners.add(onFrame);
    if (onTyping) this.#typingListeners.add(onTyping);
    // transport: 'webtransport' or 'websocket'.
    this.transport = t.kind;
    // welcome: {version, sessionId, userId, deviceId, workspaceId, serverTimeUnixMs, maxFrameSize, keepaliveMs, tokenExpiresUnixMs}.
    this.welcome = welcome;
    if (welcome.keepaliveMs > 0) {
      // A ping unanswered for a whole interval means a dead path: end the
      // session (a Client then reconnects and resumes).
      let nonce = 0;
      const ping = () => {
        const timer = setTimeout(() => this.#stop(new ParleyError(12, 'keepalive: no pong')), welcome.keepaliveMs);
        this.request(PING, encodePing({ nonce: ++nonce })).catch(() => {}).finally(() => clearTimeout(timer));
      };
      this.#keepalive = setInterval(ping, welcome.keepaliveMs);
    }
    // closed resolves with the error that ended the session.
    this.closed = this.#read();
    t.onDatagram((f) => {
      if (f.type === 'typing' && f.id === 0) this.#typed(f.body);
    });
  }

  // send sends text (a string, or bytes) to a conversation and resolves
  // with the SendAck: {convId, seq, msgId, tsUnixMs, clientMsgId, duplicate}.
  // Retrying with the same clientMsgId and text is safe: the server answers
  // the first result again. A clientMsgId is this user's own; sending it
  // again with other text or content type rejects with a ParleyError whose
  // codeName is 'conflict' (a new message needs a new id).
  async send(convId, text, { clientMsgId = crypto.randomUUID(), contentType = '' } = {}) {
    const body = typeof text === 'string' ? utf8.encode(text) : text;
    const f = await this.request(SEND, encodeSend({ convId, clientMsgId, body, contentType }));
    if (f.type !== 'sendAck') throw malformed(`expected send_ack, got ${f.type ?? 'an unknown frame'}`);
    return f.body;
  }

  // onMessage calls cb with each message the session receives (fields as
  // in MESSAGE above; body is bytes) and returns a function that removes
  // cb. A seq at or below one already handed over is dropped, so cb never
  // sees one twice (gaps are not filled here: Client does that).
  onMessage(cb) {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  // onFrame calls cb with every frame the edge starts (id 0: deliver,
  // syncResponse, receiptUpdate, presence, typing, resync, ...).
  onFrame(cb) {
    this.#frameListeners.add(cb);
    return () => this.#frameListeners.delete(cb);
  }

  // typing says this user is (typing true) or stopped (false) typing in
  // convId: one datagram (frames as on the stream, id 0), or a frame on
  // the stream where the session has no datagrams (WebSocket). Best
  // effort: nothing answers it, and the edge drops more than 2 a second
  // per device. Renew it every few seconds while the user types; it lapses
  // by itself.
  async typing(convId, typing = true, { ttlMs = 0 } = {}) {
    if (this.#err) throw this.#err;
    const frame = encodeFrame(0, TYPING, encodeTyping({ convId, typing, ttlMs }));
    if (!(await this.#t.datagram(frame))) await this.#t.writeFrame(frame);
  }

  // onTyping calls cb with each typing indicator of the user's
  // conversations ({convId, userId, typing, ttlMs}; the user's own other
  // devices included) and returns a function that removes cb.
  onTyping(cb) {
    this.#typingListeners.add(cb);
    return () => this.#typingListeners.delete(cb);
  }

  // close ends the session and resolves when its reader has stopped.
  close() {
    this.#stop(new ParleyError(UNAVAILABLE, 'the session was closed'));
    return this.closed.then(() => {});
  }

  // request sends a request frame (field: one of F) and resolves with the
  // answer frame ({id, type, body}), rejecting with the edge's Error.
  request(field, body) {
    if (this.#err) return Promise.reject(this.#err);
    const id = ++this.#nextId;
    const frame = encodeFrame(id, field, body);
    let size = frame.length - 1;
    for (let i = 0; frame[i] & 0x80; i++) size--; // less the length prefix
    const max = this.welcome.maxFrameSize;
    if (max && size > max) {
      return Promise.reject(new ParleyError(TOO_LARGE, `a frame of ${size} bytes; the session takes at most ${max}`));
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // The stream keeps writes in order; each frame is one write.
      this.#t.writeFrame(frame).catch((e) => this.#stop(e));
    });
  }

  async #read() {
    let err = null;
    try {
      for (;;) {
        const f = await this.#t.next();
        if (f === null) {
          err = new ParleyError(UNAVAILABLE, 'the edge ended the session');
          break;
        }
        const p = f.id !== 0 && this.#pending.get(f.id);
        if (p) {
          this.#pending.delete(f.id);
          if (f.type === 'error') p.reject(fromWire(f.body));
          else p.resolve(f);
          continue;
        }
        if (f.type === 'goAway') {
          err = new ParleyError(UNAVAILABLE, `the edge asked to reconnect: ${f.body.reason}`);
          break;
        } else if (f.type === 'error' && f.id === 0) {
          err = fromWire(f.body);
          break;
        }
        for (const cb of this.#frameListeners) {
          try {
            cb(f);
          } catch (e) {
            console.error('parley: onFrame callback threw', e);
          }
        }
        if (f.type === 'deliver') {
          f.body.messages.forEach((m) => this.#accept(m));
          f.body.typing.forEach((t) => this.#typed(t));
        } else if (f.type === 'syncResponse') {
          f.body.changed.forEach((d) => d.messages.forEach((m) => this.#accept(m)));
        } else if (f.type === 'typing') {
          this.#typed(f.body);
        }
      }
    } catch (e) {
      err = e;
    }
    this.#stop(err);
    return this.#err;
  }

  #typed(t) {
    for (const cb of this.#typingListeners) {
      try {
        cb(t);
      } catch (e) {
        console.error('parley: onTyping callback threw', e);
      }
    }
  }

  #accept(m) {
    if (!this.#listeners.size) return;
    if (m.seq <= (this.#marks.get(m.convId) ?? 0)) return; // seen already
    this.#marks.set(m.convId, m.seq);
    for (const cb of this.#listeners) {
      try {
        cb(m);
      } catch (e) {
        console.error('parley: onMessage callback threw', e);
      }
    }
  }

  // ended is the error the session ended with, or null while it runs.
  get ended() {
    return this.#err;
  }

  #stop(err) {
    if (this.#err) return;
    this.#err = err ?? new ParleyError(UNAVAILABLE, 'the session ended');
    clearInterval(this.#keepalive);
    for (const p of this.#pending.values()) p.reject(this.#err);
    this.#pending.clear();
    this.#t.close();
  }
}

// ---- the client an app uses ----

const RETRYABLE = new Set([8, 10, 12]); // rate_limited, unavailable, timeout
// Errors a reconnect with the same access does not fix.
const FATAL = new Set([1, 2, 4, 9, 13, 15, 16]);
const HISTORY_PAGE = 200;

// aborted resolves when signal (if any) aborts.
const aborted = (signal) => new Promise((resolve) => signal?.addEventListener('abort', resolve, { once: true }));

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

// Client keeps one device's session up, as the Go SDK does:
//
//   - Transports: WebTransport (certHashes pin a dev certificate) while it
//     works; when the browser has none, or it cannot connect (UDP blocked,
//     no HTTP/3), WebSocket, by itself. WebTransport is tried again after
//     a while.
//   - Resume: Hello carries the watermarks (per conversation the highest
//     seq handed to onMessage with none missing below); the catch-up
//     SyncResponse brings what was missed. A Resync is answered with a
//     SyncRequest; a gap (a seq beyond the watermark, or a delta's
//     last_seq beyond what came) is filled from history, forward.
//   - onMessage gets each message once, in seq order per conversation,
//     whatever mix of pushes, catch-ups and history pages brought it.
//   - Reconnects with jittered exponential backoff; at once when the
//     browser comes back online or the page is shown again. A device told
//     REVOKED stops (onState 'revoked') and does not reconnect.
//   - Tokens: token() gives the access token for a Hello; refresh() a new
//     one after TOKEN_EXPIRED and before the session's token expires (sent
//     as Reauth).
//
// Config: {webtransport: {url, certHashes}|null, websocket: {url}, token,
// refresh, deviceId, clientName, watermarks ({convId: seq}: where the app's
// knowledge starts; a conversation not named starts at 0), onMessage,
// onReceipt, onPresence, onTyping, onSync (each catch-up or resync
// SyncResponse), onState ({state: 'connecting'|'online'|'offline'|'revoked',
// transport, error}), minBackoffMs, maxBackoffMs, connectTimeoutMs}.
export class Client {
  #cfg;
  #marks = new Map(); // conv -> watermark
  #last = new Map(); // conv -> highest seq known to exist
  #pending = new Map(); // conv -> Map(seq -> message) beyond a gap
  #filling = new Set();
  #session = null;
  #up = null; // {promise, resolve}: resolves with the session when one is up
  #abort = new AbortController();
  #wake = null; // resolves the backoff wait early
  #wtFailedAt = -Infinity;
  #typers = new Map(); // `${conv} ${user}` -> timer
  #watched = null; // user ids for PresenceSubscribe, or null
  #reauthTimer = null;

  constructor(cfg) {
    this.#cfg = { minBackoffMs: 250, maxBackoffMs: 15_000, connectTimeoutMs: 5_000, clientName: 'parley-web', ...cfg };
    for (const [conv, seq] of Object.entries(cfg.watermarks ?? {})) this.#marks.set(conv, seq);
    this.#newUp();
    this.state = 'connecting';
    this.transport = '';
    this.connections = 0;
  }

  // start runs the connection loop until close.
  start() {
    if (typeof window !== 'undefined') {
      const nudge = () => this.#wake?.();
      this.#onOnline = nudge;
      this.#onOffline = () => this.#session?.close();
      this.#onVisible = () => document.visibilityState === 'visible' && nudge();
      window.addEventListener('online', this.#onOnline);
      window.addEventListener('offline', this.#onOffline);
      document.addEventListener('visibilitychange', this.#onVisible);
    }
    this.#run();
    return this;
  }
  #onOnline = null;
  #onOffline = null;
  #onVisible = null;

  close() {
    this.#abort.abort();
    this.#session?.close();
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this.#onOnline);
      window.removeEventListener('offline', this.#onOffline);
      document.removeEventListener('visibilitychange', this.#onVisible);
    }
    for (const t of this.#typers.values()) clearTimeout(t);
    clearTimeout(this.#reauthTimer);
  }

  // watermarks is {convId: seq}: what the app holds with nothing missing.
  get watermarks() {
    return Object.fromEntries(this.#marks);
  }

  // watermark is conv's watermark; setWatermark raises it (the app loaded
  // the conversation's newest messages from history, say).
  watermark(conv) {
    return this.#marks.get(conv) ?? 0;
  }

  lastSeq(conv) {
    return this.#last.get(conv) ?? 0;
  }

  #newUp() {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    this.#up = { promise, resolve };
  }

  #setState(state, error = null) {
    this.state = state;
    this.#cfg.onState?.({ state, transport: this.transport, error });
  }

  async #run() {
    let attempt = 0;
    let stale = false;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      if (typeof navigator !== 'undefined' && navigator.onLine === false) {
        this.#setState('offline');
        await this.#backoffWait(60_000);
        continue;
      }
      let s;
      try {
        s = await this.#connect(stale);
        stale = false;
      } catch (e) {
        if (signal.aborted) break;
        if (e.code === 16 || e.code === 15) {
          this.#setState('revoked', e);
          return;
        }
        if (e.code === 3) stale = true;
        else if (FATAL.has(e.code)) stale = true; // a fresh token may fix it; else the backoff spaces the retries
        attempt++;
        this.#setState('offline', e);
        await this.#backoffWait(this.#backoff(attempt));
        continue;
      }
      attempt = 0;
      this.#session = s;
      this.transport = s.transport;
      this.connections++;
      this.#setState('online');
      this.#up.resolve(s);
      this.#scheduleReauth(s);
      if (this.#watched) this.subscribePresence(this.#watched).catch(() => {});
      const err = await s.closed;
      clearTimeout(this.#reauthTimer);
      this.#session = null;
      this.#newUp();
      if (signal.aborted) break;
      if (err?.code === 16 || err?.code === 15) {
        this.#setState('revoked', err);
        return;
      }
      if (err?.code === 3) stale = true;
      this.#setState('offline', err);
      attempt++;
      await this.#backoffWait(this.#backoff(attempt));
    }
  }

  #backoff(attempt) {
    const d = Math.min(this.#cfg.minBackoffMs * 2 ** Math.min(attempt - 1, 16), this.#cfg.maxBackoffMs);
    return Math.floor(Math.random() * d) + 1;
  }

  // backoffWait waits ms, or less when the browser says it is back.
  async #backoffWait(ms) {
    await Promise.race([sleep(ms, this.#abort.signal), new Promise((r) => (this.#wake = r))]);
    this.#wake = null;
  }

  async #connect(stale) {
    this.#setState('connecting');
    const cfg = this.#cfg;
    const token = stale && cfg.refresh ? await cfg.refresh() : await cfg.token();
    let s = null;
    const opts = {
      token, deviceId: cfg.deviceId ?? '', clientName: cfg.clientName,
      watermarks: this.#marks, timeoutMs: cfg.connectTimeoutMs,
      onFrame: (f) => this.#frame(f), onTyping: (t) => this.#typing(t),
    };
    const wt = cfg.webtransport;
    const retryWT = performance.now() - this.#wtFailedAt > 5 * 60_000;
    if (wt?.url && typeof WebTransport === 'function' && retryWT) {
      try {
        const certHashes = typeof wt.certHashes === 'function' ? await wt.certHashes() : wt.certHashes;
        s = await connect({ ...opts, url: wt.url, certHashes });
      } catch (e) {
        if (e.code !== UNAVAILABLE || !cfg.websocket) throw e; // the edge refused the Hello
        this.#wtFailedAt = performance.now(); // blocked or unreachable: fall back
      }
    }
    if (!s) {
      if (!cfg.websocket) throw new ParleyError(UNAVAILABLE, 'no transport');
      s = await connectWebSocket({ ...opts, url: cfg.websocket.url });
    }
    return s;
  }

  // scheduleReauth hands the session a fresh token (Reauth) before the one
  // it has expires: a third of its life before, at most a minute.
  #scheduleReauth(s, exp = s.welcome.tokenExpiresUnixMs, serverNow = s.welcome.serverTimeUnixMs) {
    if (!exp || !this.#cfg.refresh) return;
    const left = exp - serverNow;
    const inMs = Math.max(1_000, left - Math.min(60_000, left / 3));
    clearTimeout(this.#reauthTimer);
    this.#reauthTimer = setTimeout(async () => {
      try {
        const token = await this.#cfg.refresh();
        const r = await s.request(F.REAUTH, encodeReauth({ token }));
        if (!s.ended) this.#scheduleReauth(s, r.body.tokenExpiresUnixMs, r.body.serverTimeUnixMs);
      } catch {
        // the session ends at expiry; the next one refreshes first
      }
    }, inMs);
  }

  #frame(f) {
    switch (f.type) {
      case 'deliver':
        f.body.messages.forEach((m) => this.#accept(m));
        f.body.receipts.forEach((r) => this.#cfg.onReceipt?.(r));
        f.body.presence.forEach((p) => this.#cfg.onPresence?.(p));
        break;
      case 'syncResponse':
        this.#applySync(f.body);
        break;
      case 'receiptUpdate':
        this.#cfg.onReceipt?.(f.body);
        break;
      case 'presence':
        this.#cfg.onPresence?.(f.body);
        break;
      case 'resync':
        this.session().then((s) => s.request(F.SYNC_REQUEST, encodeSyncRequest({ watermarks: this.#marks }))
          .then((r) => this.#applySync(r.body))
          .catch(() => s.close())); // the next connection syncs
        break;
      default:
    }
  }

  #applySync(r) {
    r.presence.forEach((p) => this.#cfg.onPresence?.(p));
    this.#cfg.onSync?.(r);
    for (const d of r.changed) {
      this.#last.set(d.convId, Math.max(this.lastSeq(d.convId), d.lastSeq));
      d.messages.forEach((m) => this.#accept(m));
      this.#checkGap(d.convId);
    }
  }

  // accept takes a message from any source: repeats are dropped, the next
  // in order go to the app, later ones wait for the gap to fill.
  #accept(m) {
    const conv = m.convId;
    this.#last.set(conv, Math.max(this.lastSeq(conv), m.seq));
    if (m.seq <= this.watermark(conv)) return;
    let p = this.#pending.get(conv);
    if (!p) this.#pending.set(conv, (p = new Map()));
    p.set(m.seq, m);
    for (;;) {
      const next = p.get(this.watermark(conv) + 1);
      if (!next) break;
      p.delete(next.seq);
      this.#marks.set(conv, next.seq);
      try {
        this.#cfg.onMessage?.(next);
      } catch (e) {
        console.error('parley: onMessage threw', e);
      }
    }
    this.#checkGap(conv);
  }

  #checkGap(conv) {
    if (this.lastSeq(conv) <= this.watermark(conv) || this.#filling.has(conv)) return;
    this.#filling.add(conv);
    this.#fill(conv).finally(() => this.#filling.delete(conv));
  }

  // fill reads history after the watermark until conv is caught up.
  async #fill(conv) {
    for (let attempt = 1; !this.#abort.signal.aborted;) {
      const from = this.watermark(conv);
      if (from >= this.lastSeq(conv)) return;
      let h;
      try {
        h = await this.history({ convId: conv, cursor: from, limit: HISTORY_PAGE, direction: FORWARD });
      } catch (e) {
        if (!RETRYABLE.has(e.code)) {
          console.warn('parley: cannot fill a gap', conv, e);
          return;
        }
        await sleep(e.retryAfterMs || this.#backoff(attempt), this.#abort.signal);
        attempt = Math.min(attempt + 1, 8);
        continue;
      }
      attempt = 1;
      h.messages.forEach((m) => this.#accept(m));
      this.#last.set(conv, Math.max(this.lastSeq(conv), h.lastSeq));
      if (h.messages.length === 0 && this.watermark(conv) === from) {
        this.#last.set(conv, from); // nothing there (retention): stop rather than spin
        return;
      }
    }
  }

  // session resolves with the live session, waiting for one.
  session() {
    return this.#session && !this.#session.ended ? Promise.resolve(this.#session) : this.#up.promise;
  }

  // request sends one request on the live session, waiting for one to be
  // up, and retries what is safe to retry (every request here is
  // idempotent: sends by client_msg_id) until it is answered or fails for
  // good. signal (an AbortSignal) gives up.
  async request(field, body, { signal } = {}) {
    for (let attempt = 1; ;) {
      if (this.#abort.signal.aborted || signal?.aborted) throw new ParleyError(UNAVAILABLE, 'the client was closed');
      const s = await Promise.race([this.session(), aborted(signal)]);
      if (signal?.aborted) throw new ParleyError(12, 'no answer in time');
      try {
        return await s.request(field, body);
      } catch (e) {
        if (!(e instanceof ParleyError) || (!RETRYABLE.has(e.code) && !s.ended)) throw e;
        if (e.code === 8) await sleep(e.retryAfterMs || this.#backoff(attempt), this.#abort.signal);
        attempt++;
      }
    }
  }

  // send sends text to convId, named clientMsgId (the same id for every
  // retry: the server stores it once), and resolves with the SendAck once
  // the message is durable; it retries across reconnects until then, and
  // rejects only on a refusal (not a member, too large, conflict) or after
  // timeoutMs (default 30 s; the app may retry with the same id).
  async send(convId, text, { clientMsgId = crypto.randomUUID(), contentType = '', timeoutMs = 30_000 } = {}) {
    const body = typeof text === 'string' ? utf8.encode(text) : text;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const f = await Promise.race([
        this.request(SEND, encodeSend({ convId, clientMsgId, body, contentType }), { signal: ctl.signal }),
        new Promise((_, reject) => ctl.signal.addEventListener('abort', () => reject(new ParleyError(12, 'no answer in time')))),
      ]);
      return f.body;
    } finally {
      clearTimeout(timer);
    }
  }

  // history reads a page: {convId, cursor, limit, direction} (BACKWARD
  // from cursor, 0 for the newest; FORWARD after cursor) and resolves with
  // {convId, messages (ascending), nextCursor (0: no more), lastSeq}.
  async history(req) {
    return (await this.request(F.HISTORY_REQUEST, encodeHistory(req))).body;
  }

  // receipt reports delivered or read up to seq in convId.
  async receipt(convId, seq, type) {
    return (await this.request(F.RECEIPT, encodeReceipt({ convId, seq, type }))).body;
  }

  // typing says this user is typing (or stopped) in convId; dropped while
  // no session is up.
  async typing(convId, typing = true) {
    const s = this.#session;
    if (!s || s.ended) return;
    await s.typing(convId, typing).catch(() => {});
  }

  // subscribePresence watches exactly userIds (kept across reconnects);
  // the answer's presence goes to onPresence.
  async subscribePresence(userIds) {
    this.#watched = [...userIds];
    const s = this.#session;
    if (!s || s.ended) return; // sent when a session is up
    const r = await s.request(F.PRESENCE_SUBSCRIBE, encodePresenceSubscribe({ userIds }));
    r.body.presence?.forEach((p) => this.#cfg.onPresence?.(p));
  }

  // typing indicators lapse after their TTL without a renewal: the app is
  // told {typing: false} then, as the Go SDK does.
  #typing(t) {
    const key = `${t.convId} ${t.userId}`;
    clearTimeout(this.#typers.get(key));
    this.#typers.delete(key);
    if (t.typing) {
      const ttl = Math.min(t.ttlMs || 5_000, 10_000);
      this.#typers.set(key, setTimeout(() => {
        this.#typers.delete(key);
        this.#cfg.onTyping?.({ ...t, typing: false });
      }, ttl));
    }
    this.#cfg.onTyping?.(t);
  }
}
