// wt_browser.mjs drives web/parley.js in real headless Chromium: it opens a
// WebTransport session to a parley edge, pinning the edge's certificate
// with serverCertificateHashes, sends one message and waits for one from
// another device. cmd/parley's TestBrowserWebTransport runs it against a
// test system; by hand:
//
//	PARLEY_WT_URL=https://127.0.0.1:7443/v1/wt PARLEY_CERT_HASHES=<base64,...> \
//	PARLEY_TOKEN=... PARLEY_DEVICE_ID=d_... PARLEY_CONV_ID=c_... node web/test/wt_browser.mjs
//
// Environment:
//
//	PARLEY_WT_URL           the edge's WebTransport URL (required)
//	PARLEY_CERT_HASHES      SHA-256 hashes of its certificate, base64, comma-separated (required)
//	PARLEY_CERT_HASHES_URL  the edge's /.well-known/parley/cert-hashes: the page fetches it too and reports what it got
//	PARLEY_TOKEN            an access token (required)
//	PARLEY_DEVICE_ID        the token's device (required)
//	PARLEY_CONV_ID          the conversation to send to (required)
//	PARLEY_SEND_TEXT        what to send (default "hello from the browser")
//	PARLEY_EXPECT_TEXT      the text of the message to wait for (default: any user message from another device)
//	PARLEY_TIMEOUT_MS       overall deadline (default 60000)
//	PARLEY_CHROMIUM         the browser (default /usr/bin/chromium)
//
// stdout gets one JSON object per line: progress events, then
// {"event":"result",...}. On failure it prints {"event":"error",...} and a
// message on stderr, and exits 1 (2 on the overall timeout).

import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const started = Date.now();
const out = (event, fields = {}) =>
  process.stdout.write(JSON.stringify({ event, ms: Date.now() - started, ...fields }) + '\n');

function fail(msg, code = 1) {
  out('error', { error: msg });
  process.stderr.write(`wt_browser: ${msg}\n`);
  process.exit(code);
}

// Failure is a test failure: its message says it all, no stack needed.
class Failure extends Error {}

const need = (name) => env[name] || fail(`${name} is required`);
const params = {
  url: need('PARLEY_WT_URL'),
  certHashes: need('PARLEY_CERT_HASHES').split(',').filter(Boolean),
  hashesURL: env.PARLEY_CERT_HASHES_URL || '',
  token: need('PARLEY_TOKEN'),
  deviceId: need('PARLEY_DEVICE_ID'),
  convId: need('PARLEY_CONV_ID'),
  sendText: env.PARLEY_SEND_TEXT || 'hello from the browser',
  expectText: env.PARLEY_EXPECT_TEXT || '',
};
const timeoutMs = Number(env.PARLEY_TIMEOUT_MS || 60_000);
const executablePath = env.PARLEY_CHROMIUM || '/usr/bin/chromium';

let browser = null;
let server = null;
let profile = null;

async function cleanup() {
  await browser?.close().catch(() => {});
  server?.close();
  if (profile) await rm(profile, { recursive: true, force: true }).catch(() => {});
}

const timer = setTimeout(() => {
  out('error', { error: `timed out after ${timeoutMs} ms` });
  process.stderr.write(`wt_browser: timed out after ${timeoutMs} ms\n`);
  cleanup().finally(() => process.exit(2));
}, timeoutMs);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => cleanup().finally(() => process.exit(1)));
}

// serve hands the page and parley.js out on 127.0.0.1, a secure context
// for WebTransport without TLS.
async function serve() {
  const client = await readFile(new URL('../parley.js', import.meta.url));
  server = createServer((req, res) => {
    if (req.url === '/parley.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(client);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>parley WebTransport test</title>');
    } else {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
    }
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}/`;
}

// inPage runs in the browser: connect, send, wait for a message from
// another device.
async function inPage(p) {
  const { connect, fetchCertHashes } = await import('/parley.js');
  const b64 = (u8) => btoa(String.fromCharCode(...u8));
  const big = (_, v) => (typeof v === 'bigint' ? v.toString() : v);
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const r = {
    userAgent: navigator.userAgent, secureContext: window.isSecureContext,
    webTransport: typeof WebTransport === 'function', steps: {},
  };
  if (!r.webTransport) return JSON.stringify({ ...r, error: 'this browser has no WebTransport' });
  try {
    if (p.hashesURL) {
      r.fetchedHashes = (await fetchCertHashes(p.hashesURL)).map((h) => b64(h.value));
      r.steps.fetchedHashes = ms();
    }
    // The pin is what makes the edge trusted: a wrong hash, or none (its
    // certificate is self-signed), must be refused.
    r.refused = {};
    for (const [name, certHashes] of [['wrongHash', [new Uint8Array(32)]], ['noHash', []]]) {
      try {
        const s = await connect({ url: p.url, certHashes, token: p.token, deviceId: p.deviceId });
        await s.close();
        r.refused[name] = '';
      } catch (e) {
        r.refused[name] = e?.message || String(e);
      }
    }
    r.steps.refused = ms();
    let resolveReply;
    const reply = new Promise((resolve) => (resolveReply = resolve));
    const session = await connect({
      url: p.url, certHashes: p.certHashes, token: p.token, deviceId: p.deviceId,
      clientName: 'parley.js-browser-test',
      onMessage: (m) => {
        const text = new TextDecoder().decode(m.body);
        // Not our own message coming back (session is not assigned yet
        // when the first messages arrive, so compare with the parameter).
        if (m.convId !== p.convId || m.kind !== 0 || m.senderDeviceId === p.deviceId) return;
        if (p.expectText && text !== p.expectText) return;
        resolveReply({ convId: m.convId, seq: m.seq, msgId: m.msgId, senderUserId: m.senderUserId, senderDeviceId: m.senderDeviceId, tsUnixMs: m.tsUnixMs, text });
      },
    });
    r.steps.welcomed = ms();
    r.welcome = session.welcome;
    // Typing from the other member (sent as a datagram by the edge).
    const typed = new Promise((resolve) => session.onTyping((t) => {
      if (t.convId === p.convId && t.userId !== session.welcome.userId && t.typing) resolve(t);
    }));
    r.ack = await session.send(p.convId, p.sendText);
    r.steps.acked = ms();
    // This user's typing, as datagrams, renewed as an app would until the
    // reply comes: the Go side waits for the edge to get one.
    await session.typing(p.convId, true);
    r.steps.typed = ms();
    const renew = setInterval(() => session.typing(p.convId, true).catch(() => {}), 500);
    // The edge ending the session early is an answer too.
    const ended = session.closed.then((e) => ({ error: `session ended: ${e?.message ?? e}` }));
    const got = await Promise.race([reply, ended]);
    clearInterval(renew);
    if (got.error) {
      r.error = got.error;
    } else {
      r.received = got;
      r.steps.received = ms();
      const late = new Promise((resolve) => setTimeout(() => resolve(null), 20000));
      r.typing = await Promise.race([typed, late]);
      r.steps.typing = ms();
    }
    await session.close();
    r.steps.closed = ms();
  } catch (e) {
    r.error = `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  }
  return JSON.stringify(r, big);
}

async function main() {
  const page0 = await serve();
  profile = await mkdtemp(join(tmpdir(), 'parley-chromium-'));
  // A fresh profile each run; QUIC stays on (WebTransport needs it); the
  // certificate is trusted only through serverCertificateHashes.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', // root
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-gpu',
      '--disable-dev-shm-usage',
    ],
  });
  browser = context;
  out('launched');
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => process.stderr.write(`page console.${m.type()}: ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  await page.goto(page0);
  out('page', { url: page0 });
  const r = JSON.parse(await page.evaluate(inPage, params));
  if (r.error) throw new Failure(`in the page: ${r.error} (${JSON.stringify(r)})`);
  if (!r.secureContext) throw new Failure('the page is not a secure context');
  out('result', { ok: true, ...r });
}

main()
  .then(async () => {
    clearTimeout(timer);
    await cleanup();
    process.exit(0);
  })
  .catch(async (e) => {
    await cleanup();
    fail(e instanceof Failure ? e.message : (e?.stack ?? String(e)));
  });
