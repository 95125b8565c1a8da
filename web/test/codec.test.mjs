// Unit tests of parley.js's hand-written protobuf and framing against the
// Go side's golden vectors (syncproto/testdata/golden). Run with
// `node --test web/test/` (cmd/parley's TestWebClientCodec does).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  decodeFrame, encodeFrame, encodeHello, encodeSend, encodeTyping, encodeHistory, encodeReceipt, encodeSyncRequest,
  encodePresenceSubscribe, encodeReauth, encodePing, readFrames, decodeOne, ParleyError, F, READ, BACKWARD,
} from '../parley.js';

const golden = (name) => new Uint8Array(readFileSync(new URL(`../../syncproto/testdata/golden/${name}.bin`, import.meta.url)));

// The golden vectors' ids (syncproto/golden_test.go).
const team = 'c_q7nmx2brk4dv6tzjwhc3pya5es';
const direct = 'dm_t2sm67k2ayrqhsxbov244zfvaq';
const phone = 'd_p3jx6wqcm2zt7vhkan5rbedy4s';
const ana = 'u_m2hq7tvxa4cz6nwpkr3bjdyse5';
const bo = 'u_t6bw2nzaxq5kcv7jpmrhd3yef4';

// One golden file is one length-prefixed frame: strip the prefix.
function payload(b) {
  let i = 0;
  while (b[i] & 0x80) i++;
  return b.subarray(i + 1);
}

// stream returns a ReadableStream yielding b in chunks of size n.
function stream(b, n) {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= b.length) c.close();
      else c.enqueue(b.slice(i, (i += n)));
    },
  });
}

test('hello encodes byte for byte as the Go client does', () => {
  const hello = encodeHello({
    token: 'AQFrMQAAAYvB8VwAAAGLwfFcAA.c2lnbmF0dXJl', deviceId: phone,
    clientName: 'parley-go/1.0 (linux)', watermarks: { [team]: 41, [direct]: 7 },
  });
  assert.deepEqual(encodeFrame(1, 10, hello), golden('hello'));
});

test('send encodes as protobuf does (the golden one without its attachment)', () => {
  const req = encodeSend({
    convId: team, clientMsgId: '01J9Z8K6Q2-0042', contentType: 'text/plain; charset=utf-8',
    body: new TextEncoder().encode('hello, team: the deploy is done'),
  });
  const [id, send] = fields(payload(golden('send')));
  assert.deepEqual(id, [1, Uint8Array.of(2)]);
  assert.equal(send[0], 12);
  const want = fields(send[1]).filter(([n]) => n !== 5); // attachments
  assert.deepEqual(fields(req), want);
  assert.deepEqual(payload(encodeFrame(2, 12, req)).subarray(0, 2), Uint8Array.of(0x08, 0x02));
});

// fields splits a message into [number, bytes] pairs: a varint's bytes,
// or a length-delimited field's contents.
function fields(b) {
  const out = [];
  let i = 0;
  const uvarint = () => {
    let v = 0;
    for (let s = 1; ; s *= 128) {
      const x = b[i++];
      v += (x & 0x7f) * s;
      if (x < 0x80) return v;
    }
  };
  while (i < b.length) {
    const key = uvarint();
    const start = i;
    if ((key & 7) === 0) {
      uvarint();
      out.push([key >> 3, b.subarray(start, i)]);
    } else {
      const n = uvarint();
      out.push([key >> 3, b.subarray(i, i + n)]);
      i += n;
    }
  }
  return out;
}

test('welcome decodes', () => {
  const f = decodeFrame(payload(golden('welcome')));
  assert.equal(f.id, 1);
  assert.equal(f.type, 'welcome');
  assert.deepEqual(f.body, {
    version: 1, sessionId: 's_h4kx7qm2vzcb6tnwjrp3dya5e7', userId: ana, deviceId: phone,
    workspaceId: f.body.workspaceId, serverTimeUnixMs: 1_700_000_000_000, maxFrameSize: 1 << 20, keepaliveMs: 30_000,
    tokenExpiresUnixMs: 1_700_000_900_000,
  });
  assert.match(f.body.workspaceId, /^w_/);
});

test('send_ack decodes', () => {
  const f = decodeFrame(payload(golden('send_ack')));
  assert.equal(f.id, 2);
  assert.equal(f.type, 'sendAck');
  assert.equal(f.body.convId, team);
  assert.equal(f.body.seq, 42);
  assert.equal(f.body.tsUnixMs, 1_700_000_042_000);
  assert.equal(f.body.clientMsgId, '01J9Z8K6Q2-0042');
  assert.equal(f.body.duplicate, false);
  assert.match(f.body.msgId, /^m_/);
});

test('deliver decodes messages, system ones included', () => {
  const f = decodeFrame(payload(golden('deliver')));
  assert.equal(f.id, 0);
  assert.equal(f.type, 'deliver');
  const [m, sys] = f.body.messages;
  assert.equal(m.convId, team);
  assert.equal(m.seq, 42);
  assert.equal(m.senderUserId, ana);
  assert.equal(m.senderDeviceId, phone);
  assert.equal(m.tsUnixMs, 1_700_000_042_000);
  assert.equal(new TextDecoder().decode(m.body), 'hello, team: the deploy is done');
  assert.equal(m.contentType, 'text/plain; charset=utf-8');
  assert.equal(m.kind, 0);
  assert.equal(sys.seq, 43);
  assert.equal(sys.kind, 1);
});

test('sync_response decodes its deltas', () => {
  const f = decodeFrame(payload(golden('sync_response')));
  assert.equal(f.type, 'syncResponse');
  assert.equal(f.body.changed.length, 2);
  assert.equal(f.body.changed[0].messages.length, 2);
  assert.equal(f.body.changed[1].convId, direct);
  assert.equal(f.body.changed[1].lastSeq, 900);
  assert.equal(f.body.changed[1].truncated, true);
});

test('error decodes with its code', () => {
  const f = decodeFrame(payload(golden('error')));
  assert.equal(f.type, 'error');
  assert.deepEqual(f.body, { code: 8, message: 'too many messages; slow down', retryAfterMs: 1500 });
});

test('64-bit values beyond 2^53 come back as exact BigInts', () => {
  const f = decodeFrame(payload(golden('pong')));
  assert.equal(f.type, 'pong');
  assert.equal(f.body.nonce, 0x1122334455667788n);
  // seq 2^64-1, ts -1 and a seq of exactly 2^53-1 (still a Number).
  const ack = (seq, ts) => decodeFrame(payload(encodeFrame(3, 13, Uint8Array.from([0x10, ...varint(seq), 0x20, ...varint(ts)]))));
  assert.deepEqual([ack(2n ** 64n - 1n, 2n ** 64n - 1n).body.seq, ack(1n, 2n ** 64n - 1n).body.tsUnixMs], [2n ** 64n - 1n, -1]);
  assert.equal(ack(2n ** 53n - 1n, 1n).body.seq, Number.MAX_SAFE_INTEGER);
  assert.equal(ack(2n ** 53n, 2n ** 63n).body.seq, 2n ** 53n);
  assert.equal(ack(1n, 2n ** 63n).body.tsUnixMs, -(2n ** 63n));
});

function varint(v) {
  const out = [];
  for (; v >= 0x80n; v >>= 7n) out.push(Number(v & 0x7fn) | 0x80);
  out.push(Number(v));
  return out;
}

test('unknown bodies are skipped', () => {
  const f = decodeFrame(payload(golden('compat_unknown_body')));
  assert.equal(f.type, null);
  const g = decodeFrame(payload(golden('go_away')));
  assert.equal(g.type, 'goAway');
  assert.equal(g.body.reason, 'edge draining');
  assert.deepEqual(g.body.alternatives, ['edge-2.example.net:443', 'edge-3.example.net:443']);
});

test('the server frames a Client reads decode', () => {
  const p = decodeFrame(payload(golden('presence')));
  assert.equal(p.type, 'presence');
  assert.deepEqual({ online: p.body.online, lastSeen: p.body.lastSeenUnixMs }, { online: true, lastSeen: 1_700_000_001_000 });
  const r = decodeFrame(payload(golden('receipt_update')));
  assert.equal(r.type, 'receiptUpdate');
  assert.deepEqual([r.body.convId, r.body.type, r.body.seq, r.body.count, r.body.deviceId],
    [team, 1, 42, 3, 'd_x2kq7bwn5vzcm4jtrh6pdya3e5']);
  assert.equal(decodeFrame(payload(golden('resync'))).body.reason, 'delivery queue overflowed');
  const h = decodeFrame(payload(golden('history_response')));
  assert.equal(h.type, 'historyResponse');
  assert.deepEqual(h.body.messages.map((m) => [m.seq, new TextDecoder().decode(m.body)]), [[38, 'first'], [39, 'second']]);
  assert.deepEqual([h.body.nextCursor, h.body.lastSeq, h.body.convId], [38, 42, team]);
  const a = decodeFrame(payload(golden('receipt_ack')));
  assert.deepEqual([a.type, a.id, a.body.convId, a.body.type, a.body.seq], ['receiptAck', 5, team, READ, 42]);
  const ra = decodeFrame(payload(golden('reauth_ack')));
  assert.deepEqual([ra.type, ra.body.tokenExpiresUnixMs, ra.body.serverTimeUnixMs], ['reauthAck', 1_700_001_700_000, 1_700_000_800_000]);
  const s = decodeFrame(payload(golden('sync_response')));
  assert.deepEqual(s.body.changed.map((d) => [d.readSeq, d.unread]), [[41, 2], [7, 893]]);
  assert.equal(new TextDecoder().decode(s.body.token), 'opaque-sync-token-v1');
});

test('attachments decode as metadata', () => {
  // A Message with one Attachment{id a_1, name x.png, size 5}, in a Deliver.
  const att = [0x0a, 0x03, 0x61, 0x5f, 0x31, 0x12, 0x05, 0x78, 0x2e, 0x70, 0x6e, 0x67, 0x20, 0x05];
  const m = [0x10, 0x01, 0x52, att.length, ...att];
  const f = decodeFrame(payload(encodeFrame(0, 14, Uint8Array.from([0x0a, m.length, ...m]))));
  assert.deepEqual(f.body.messages[0].attachments.map((x) => [x.id, x.name, x.size]), [['a_1', 'x.png', 5]]);
});

test('the requests a Client sends encode byte for byte as Go does', () => {
  const cases = [
    ['history_request', 4, F.HISTORY_REQUEST, encodeHistory({ convId: team, cursor: 40, limit: 2, direction: BACKWARD })],
    ['receipt', 5, F.RECEIPT, encodeReceipt({ convId: team, seq: 42, type: READ })],
    ['sync_request', 3, F.SYNC_REQUEST, encodeSyncRequest({ watermarks: new Map([[team, 41]]), perConversationLimit: 100 })],
    ['presence_subscribe', 6, F.PRESENCE_SUBSCRIBE, encodePresenceSubscribe({ userIds: [bo, ana] })],
    ['reauth', 9, F.REAUTH, encodeReauth({ token: 'AQFrMQAAAYvB_9wAAAGLwg3sAA.c2lnbmF0dXJlMg' })],
    ['ping', 7, F.PING, encodePing({ nonce: 0x1122334455667788n })],
  ];
  for (const [name, id, field, body] of cases) assert.deepEqual(encodeFrame(id, field, body), golden(name), name);
});

test('frames are read across any chunking; a clean end is null', async () => {
  const all = Uint8Array.from([...golden('welcome'), ...golden('deliver'), ...golden('pong')]);
  for (const n of [1, 2, 7, all.length]) {
    const frames = readFrames(stream(all, n), 1 << 20);
    assert.deepEqual([(await frames.next()).type, (await frames.next()).type, (await frames.next()).type], ['welcome', 'deliver', 'pong'], `chunks of ${n}`);
    assert.equal(await frames.next(), null);
  }
});

test('bad framing is MALFORMED or TOO_LARGE', async () => {
  const cases = [
    ['zero length', [0x00], 1],
    ['non-minimal length', [0x81, 0x00, 0x08], 1],
    ['11-byte length', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 1],
    ['ends inside the length', [0x81], 1],
    ['ends inside the payload', [0x03, 0x08, 0x01], 1],
    ['over the limit', [0x81, 0x08], 7],
    ['truncated field', [0x02, 0x5a, 0x05], 1],
    ['field number 0', [0x02, 0x00, 0x01], 1],
    ['wire type 3', [0x01, 0x0b], 1],
  ];
  for (const [name, bytes, code] of cases) {
    const frames = readFrames(stream(Uint8Array.from(bytes), 1), 1000);
    await assert.rejects(frames.next(), (e) => e instanceof ParleyError && e.code === code, name);
  }
});

test('typing decodes, and encodes as protobuf does (without the user, which the edge sets)', () => {
  const f = decodeFrame(payload(golden('typing')));
  assert.equal(f.type, 'typing');
  assert.equal(f.body.typing, true);
  assert.equal(f.body.ttlMs, 5000);
  assert.ok(f.body.convId.length > 0 && f.body.userId.length > 0);
  // Go: Frame{Typing{conv_id, typing: true, ttl_ms: 3000}}, id 0.
  const b = encodeFrame(0, 22, encodeTyping({ convId: 'c_1', typing: true, ttlMs: 3000 }));
  // The bytes syncproto.AppendDatagram gives for the same indicator.
  assert.deepEqual([...b], [0x0d, 0xb2, 0x01, 0x0a, 0x0a, 0x03, 0x63, 0x5f, 0x31, 0x18, 0x01, 0x20, 0xb8, 0x17]);
});

test('a datagram or WebSocket message is exactly one frame', () => {
  assert.equal(decodeOne(golden('typing')).type, 'typing');
  const bad = [[], [0x00], [0x05, 0x08], [0x80], [0x01, 0x08, 0x01], [...golden('ping'), 0x00]];
  for (const b of bad) assert.throws(() => decodeOne(Uint8Array.from(b)), (e) => e instanceof ParleyError && e.code === 1, JSON.stringify(b));
});
