// search.js: the search module (modules.js's `search` seam), over
// GET /v1/search (rest.js). The edge's marks are byte ranges of the
// snippet's UTF-8 text; segments turns them into pieces of the JS string
// (UTF-16), so a hit in CJK or emoji text is marked where it is.

const enc = new TextEncoder();

// byteIndexes maps each UTF-8 byte offset that starts a code point (and
// the end) to its UTF-16 index in str.
function byteIndexes(str) {
  const map = new Map();
  let b = 0;
  let i = 0;
  for (const ch of str) {
    map.set(b, i);
    b += enc.encode(ch).length;
    i += ch.length;
  }
  map.set(b, i);
  return { map, bytes: b };
}

// segments splits snippet into [{text, mark}] by marks ([{start, end}],
// UTF-8 byte offsets, end exclusive). A range that is out of bounds,
// empty, overlaps one before it, or does not fall on code point
// boundaries (rounded outward to them) is clamped or dropped.
export function segments(snippet, marks = []) {
  const { map, bytes } = byteIndexes(snippet);
  const toIndex = (b, up) => {
    b = Math.max(0, Math.min(bytes, b));
    while (!map.has(b)) b += up ? 1 : -1;
    return map.get(b);
  };
  const out = [];
  let at = 0;
  for (const m of [...marks].sort((x, y) => x.start - y.start)) {
    const s = Math.max(at, toIndex(m.start, false));
    const e = toIndex(m.end, true);
    if (e <= s) continue;
    if (s > at) out.push({ text: snippet.slice(at, s), mark: false });
    out.push({ text: snippet.slice(s, e), mark: true });
    at = e;
  }
  if (at < snippet.length) out.push({ text: snippet.slice(at), mark: false });
  return out;
}

// query runs one page of a search: {q, convId, sort ('newest' |
// 'relevance'), cursor, limit} -> {hits: [{convId, seq, msgId, senderId,
// ts, snippet, segments}], total, nextCursor ('' : no more)}.
export async function query(api, { q, convId = '', sort = 'newest', cursor = '', limit = 20 }) {
  const r = await api.search({ q, convId, sort, cursor, limit });
  return {
    hits: (r.hits ?? []).map((h) => ({
      convId: h.conv_id, seq: h.seq, msgId: h.msg_id, senderId: h.sender_id, ts: h.ts,
      snippet: h.snippet, segments: segments(h.snippet, h.marks ?? []),
    })),
    total: r.total ?? 0,
    nextCursor: r.next_cursor ?? '',
  };
}
