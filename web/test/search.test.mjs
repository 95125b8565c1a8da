// Tests of app/search.js's segments: the edge's marks are UTF-8 byte
// ranges of the snippet, the page's strings UTF-16.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { segments } from '../app/search.js';

const enc = new TextEncoder();
// range is the byte range of the first `word` in `s`.
const range = (s, word) => {
  const i = s.indexOf(word);
  const start = enc.encode(s.slice(0, i)).length;
  return { start, end: start + enc.encode(word).length };
};
const marked = (segs) => segs.filter((x) => x.mark).map((x) => x.text);
const joined = (segs) => segs.map((x) => x.text).join('');

test('ASCII', () => {
  const s = 'the deploy is done';
  const segs = segments(s, [range(s, 'deploy')]);
  assert.deepEqual(segs, [{ text: 'the ', mark: false }, { text: 'deploy', mark: true }, { text: ' is done', mark: false }]);
});

test('CJK: three bytes a character', () => {
  const s = '我家在上海东边';
  const r = range(s, '上海');
  assert.deepEqual(r, { start: 9, end: 15 });
  const segs = segments(s, [r]);
  assert.deepEqual(marked(segs), ['上海']);
  assert.equal(joined(segs), s);
});

test('emoji (surrogate pairs) and accents before the mark', () => {
  const s = 'café 🍜🍜 ramen here, ramen';
  const first = range(s, 'ramen');
  const last = { start: enc.encode(s).length - 5, end: enc.encode(s).length };
  const segs = segments(s, [last, first]); // unsorted
  assert.deepEqual(marked(segs), ['ramen', 'ramen']);
  assert.equal(joined(segs), s);
});

test('bad ranges are clamped or dropped', () => {
  const s = '上海 x';
  // inside a character: widened to it; overlapping the one before: starts
  // after it; past the end: clamped; empty: dropped.
  const segs = segments(s, [{ start: 1, end: 2 }, { start: 2, end: 4 }, { start: 7, end: 99 }, { start: 5, end: 5 }]);
  assert.deepEqual(marked(segs), ['上', '海', 'x']);
  assert.equal(joined(segs), s);
  assert.deepEqual(segments('', [{ start: 0, end: 3 }]), []);
});
