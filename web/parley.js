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
// Deliberately small: it decodes only the frames below, skips the others
// (as the protocol asks), and does not reconnect, fill gaps from history or
// answer Resync; the Go SDK (client/) does all that.
//
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
  8: ['keepaliveMs', T.u32],
};
const SEND_ACK = {
  1: ['convId', T.string], 2: ['seq', T.u64], 3: ['msgId', T.string], 4: ['tsUnixMs', T.i64],
  5: ['clientMsgId', T.string], 6: ['duplicate', T.bool],
};
// Attachments (field 10) are skipped.
const MESSAGE = {
  1: ['convId', T.string], 2: ['seq', T.u64], 3: ['msgId', T.string], 4: ['clientMsgId', T.string],
  5: ['senderUserId', T.string], 6: ['senderDeviceId', T.string], 7: ['tsUnixMs', T.i64],
  8: ['body', T.bytes], 9: ['contentType', T.string], 11: ['kind', T.enum],
};
const DELIVER = { 1: ['messages', list(msg(MESSAGE))] };
const DELTA = {
  1: ['convId', T.string], 2: ['lastSeq', T.u64], 3: ['messages', list(msg(MESSAGE))],
  4: ['truncated', T.bool],
};
const SYNC_RESPONSE = { 1: ['changed', list(msg(DELTA))] };
const ERROR = { 1: ['code', T.enum], 2: ['message', T.string], 3: ['retryAfterMs', T.u32] };
const PONG = { 1: ['nonce', T.u64] };
const GO_AWAY = { 1: ['reason', T.string] };
const TYPING_BODY = { 1: ['convId', T.string], 2: ['userId', T.string], 3: ['typing', T.bool], 4: ['ttlMs', T.u32] };

// Frame bodies this client reads, by field number of the Frame oneof.
const BODIES = {
  11: ['welcome', WELCOME], 13: ['sendAck', SEND_ACK], 14: ['deliver', DELIVER],
  16: ['syncResponse', SYNC_RESPONSE], 22: ['typing', TYPING_BODY], 23: ['error', ERROR], 25: ['pong', PONG],
  27: ['goAway', GO_AWAY],
};

// Frame fields this client writes.
const HELLO = 10;
const SEND = 12;
const TYPING = 22;
const PING = 24;

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
    const pos = new Writer();
    for (const [conv, seq] of Object.entries(watermarks)) {
      pos.message(1, new Writer().string(1, conv).varint(2, seq).finish());
    }
    w.message(5, pos.finish());
  }
  return w.string(6, clientName).finish();
}

export function encodeSend({ convId, clientMsgId, body, contentType }) {
  return new Writer().string(1, convId).string(2, clientMsgId).bytes(3, body).string(4, contentType).finish();
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

// ---- sessions ----

// connect opens a WebTransport session to url (https://host:port/v1/wt),
// says Hello and resolves with a Session once the edge answers Welcome. It
// rejects with a ParleyError when the edge refuses the Hello.
//
// certHashes pins the edge's certificate (see fetchCertHashes); without
// them the browser checks the certificate against its roots. watermarks
// ({convId: seq}, {} for none) asks for a catch-up of what came after them;
// without it the session carries live messages only.
export async function connect({
  url, certHashes, token, deviceId = '', clientName = 'parley.js', watermarks, onMessage,
} = {}) {
  const options = {};
  if (certHashes && certHashes.length) options.serverCertificateHashes = certHashes.map(toHash);
  const wt = new WebTransport(url, options);
  wt.closed.catch(() => {}); // how it ended is reported through the session
  try {
    await wt.ready;
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const frames = readFrames(stream.readable);
    await writer.write(encodeFrame(1, HELLO, encodeHello({ token, deviceId, clientName, watermarks })));
    const f = await frames.next();
    if (f === null) throw new ParleyError(UNAVAILABLE, 'the edge closed the session before Welcome');
    if (f.type === 'error') throw fromWire(f.body);
    if (f.type !== 'welcome' || f.id !== 1) throw malformed(`expected welcome, got ${f.type ?? 'an unknown frame'}`);
    const s = new Session(wt, writer, frames, f.body);
    if (onMessage) s.onMessage(onMessage);
    return s;
  } catch (e) {
    try {
      wt.close({ closeCode: 0, reason: '' });
    } catch {
      // already closed
    }
    if (e instanceof ParleyError) throw e;
    throw new ParleyError(UNAVAILABLE, `WebTransport to ${url}: ${e?.message ?? e}`);
  }
}

function fromWire(e) {
  return new ParleyError(e.code, e.message, e.retryAfterMs);
}

// Session is one welcomed session. Its methods may be called at any time;
// once it ends, they fail with the reason it ended.
export class Session {
  #wt;
  #writer;
  #frames;
  #nextId = 1; // 1 was the Hello
  #pending = new Map(); // id -> {resolve, reject}
  #listeners = new Set();
  #typingListeners = new Set();
  #marks = new Map(); // conv -> highest seq handed to listeners
  #keepalive = null;
  #err = null;

  constructor(wt, writer, frames, welcome) {
    this.#wt = wt;
    this.#writer = writer;
    this.#frames = frames;
    // welcome: {version, sessionId, userId, deviceId, workspaceId, serverTimeUnixMs, maxFrameSize, keepaliveMs}.
    this.welcome = welcome;
    if (welcome.keepaliveMs > 0) {
      const ping = () => this.#request(PING, new Writer().varint(1, Date.now()).finish()).catch(() => {});
      this.#keepalive = setInterval(ping, welcome.keepaliveMs);
    }
    // closed resolves with the error that ended the session.
    this.closed = this.#read();
    this.#readDatagrams();
  }

  // send sends text (a string, or bytes) to a conversation and resolves
  // with the SendAck: {convId, seq, msgId, tsUnixMs, clientMsgId, duplicate}.
  // Retrying with the same clientMsgId and text is safe: the server answers
  // the first result again. A clientMsgId is this user's own; sending it
  // again with other text or content type rejects with a ParleyError whose
  // codeName is 'conflict' (a new message needs a new id).
  async send(convId, text, { clientMsgId = crypto.randomUUID(), contentType = '' } = {}) {
    const body = typeof text === 'string' ? utf8.encode(text) : text;
    const f = await this.#request(SEND, encodeSend({ convId, clientMsgId, body, contentType }));
    if (f.type !== 'sendAck') throw malformed(`expected send_ack, got ${f.type ?? 'an unknown frame'}`);
    return f.body;
  }

  // onMessage calls cb with each message the session receives (fields as
  // in MESSAGE above; body is bytes) and returns a function that removes
  // cb. The edge delivers each conversation in seq order; a seq at or below
  // one already handed over is dropped, so cb never sees one twice (gaps
  // are not filled from history, as the Go SDK does). The sender's own
  // messages come back too.
  onMessage(cb) {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  // typing says this user is (typing true) or stopped (false) typing in
  // convId: one datagram (frames as on the stream, id 0), or a frame on
  // the stream where the session has no datagrams. Best effort: nothing
  // answers it, and the edge drops more than 2 a second per device.
  // Renew it every few seconds while the user types; it lapses by itself.
  async typing(convId, typing = true, { ttlMs = 0 } = {}) {
    if (this.#err) throw this.#err;
    const frame = encodeFrame(0, TYPING, encodeTyping({ convId, typing, ttlMs }));
    const dg = this.#wt.datagrams;
    if (dg && (dg.maxDatagramSize ?? Infinity) >= frame.length) {
      // A writer per call: datagrams need no order, and none is held.
      const w = (dg.createWritable ? dg.createWritable() : dg.writable).getWriter();
      try {
        await w.write(frame);
      } finally {
        w.releaseLock();
      }
      return;
    }
    await this.#writer.write(frame);
  }

  // onTyping calls cb with each typing indicator of the user's
  // conversations ({convId, userId, typing, ttlMs}; the user's own other
  // devices included) and returns a function that removes cb. Indicators
  // lapse after ttlMs without a renewal: the app should clear them then
  // (the Go SDK reports the lapse itself).
  onTyping(cb) {
    this.#typingListeners.add(cb);
    return () => this.#typingListeners.delete(cb);
  }

  // close ends the session and resolves when its reader has stopped.
  close() {
    this.#stop(new ParleyError(UNAVAILABLE, 'the session was closed'));
    return this.closed.then(() => {});
  }

  #request(field, body) {
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
      this.#writer.write(frame).catch((e) => this.#stop(e));
    });
  }

  async #read() {
    let err = null;
    try {
      for (;;) {
        const f = await this.#frames.next();
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
        if (f.type === 'deliver') {
          f.body.messages.forEach((m) => this.#accept(m));
        } else if (f.type === 'syncResponse') {
          f.body.changed.forEach((d) => d.messages.forEach((m) => this.#accept(m)));
        } else if (f.type === 'typing') {
          this.#typed(f.body);
        } else if (f.type === 'goAway') {
          err = new ParleyError(UNAVAILABLE, `the edge asked to reconnect: ${f.body.reason}`);
          break;
        } else if (f.type === 'error' && f.id === 0) {
          err = fromWire(f.body);
          break;
        }
      }
    } catch (e) {
      err = e;
    }
    this.#stop(err);
    return this.#err;
  }

  // #readDatagrams passes on typing datagrams until the session ends; a
  // datagram that does not decode is dropped.
  async #readDatagrams() {
    const dg = this.#wt.datagrams;
    if (!dg) return;
    const reader = dg.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        try {
          let n = 0;
          let i = 0;
          for (; value[i] & 0x80; i++) n += (value[i] & 0x7f) * 2 ** (7 * i);
          n += value[i] * 2 ** (7 * i);
          if (n !== value.length - i - 1) continue; // not exactly one frame
          const f = decodeFrame(value.subarray(i + 1));
          if (f.type === 'typing' && f.id === 0) this.#typed(f.body);
        } catch {
          // a bad datagram: dropped
        }
      }
    } catch {
      // the session ended
    } finally {
      reader.releaseLock();
    }
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

  #stop(err) {
    if (this.#err) return;
    this.#err = err ?? new ParleyError(UNAVAILABLE, 'the session ended');
    clearInterval(this.#keepalive);
    for (const p of this.#pending.values()) p.reject(this.#err);
    this.#pending.clear();
    this.#frames.cancel();
    try {
      this.#wt.close({ closeCode: 0, reason: '' });
    } catch {
      // already closed
    }
  }
}
