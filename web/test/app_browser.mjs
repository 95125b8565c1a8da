// app_browser.mjs drives the web app in real headless Chromium for
// cmd/parley's browser tests: it reads one JSON command a line on stdin and
// answers each on stdout with {"id", "ok", "value"} or {"id", "ok": false,
// "error"}. The Go test says what to do; this only does it.
//
// Commands ({"id": n, "cmd": ..., ...}):
//
//	launch     {name, args}                     a browser (PARLEY_CHROMIUM, default /usr/bin/chromium)
//	page       {name, browser, width, height, colorScheme, noWebTransport, blackholeUDP, permissions}
//	           a page in a fresh context (noWebTransport: the page has no WebTransport,
//	           as in a browser without it; blackholeUDP: its WebTransport sessions go to
//	           this UDP port instead, which drops everything, as where UDP is blocked;
//	           permissions: granted to the context, e.g. ["notifications"])
//	push       {page, data}                     a Web Push message (data: JSON) delivered to the page
//	           origin's service worker through the DevTools protocol
//	           (ServiceWorker.deliverPushMessage), as a push service would
//	goto       {page, url}
//	fill       {page, selector, value}
//	click      {page, selector}
//	press      {page, selector, key}
//	waitFor    {page, fn, arg, timeout}         until the expression fn(arg) in the page is truthy; its value
//	eval       {page, fn, arg}                  fn(arg) in the page
//	offline    {page, offline}
//	reload     {page}
//	colorScheme {page, colorScheme}
//	viewport   {page, width, height}
//	screenshot {page, path}
//	logs       {page}                           the page's console errors so far
//	close      {page}                           the page and its context
//	quit
//
// Environment: PARLEY_CHROMIUM.

import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const executablePath = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
const browsers = new Map();
const pages = new Map(); // name -> {page, context, logs}

const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const page = (name) => {
  const p = pages.get(name);
  if (!p) throw new Error(`no page ${name}`);
  return p;
};
// fn is the text of a function of one argument, run in the page.
const inPage = (fn) => new Function('arg', `return (${fn})(arg);`);

const commands = {
  async launch({ name, args = [] }) {
    browsers.set(name, await chromium.launch({ executablePath, args: args ?? [] }));
  },
  async page({ name, browser, width, height, colorScheme, noWebTransport = false, blackholeUDP = 0, permissions = [] }) {
    const context = await browsers.get(browser).newContext({
      viewport: { width: width ?? 1280, height: height ?? 800 }, colorScheme: colorScheme ?? 'light', deviceScaleFactor: 1,
    });
    if (permissions?.length) await context.grantPermissions(permissions);
    if (noWebTransport) await context.addInitScript(() => { delete window.WebTransport; });
    if (blackholeUDP) {
      // WebTransport sessions go to a UDP port that drops every packet, as
      // a network that blocks UDP does.
      await context.addInitScript((port) => {
        const WT = window.WebTransport;
        window.WebTransport = class extends WT {
          constructor(url, options) {
            const u = new URL(url);
            u.port = String(port);
            super(u.href, options);
          }
        };
      }, blackholeUDP);
    }
    const p = await context.newPage();
    const logs = [];
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') logs.push(`${m.type()}: ${m.text()}`); });
    p.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    pages.set(name, { page: p, context, logs });
  },
  goto: ({ page: n, url }) => page(n).page.goto(url).then(() => null),
  fill: ({ page: n, selector, value }) => page(n).page.fill(selector, value),
  click: ({ page: n, selector }) => page(n).page.click(selector),
  press: ({ page: n, selector, key }) => page(n).page.press(selector, key),
  async waitFor({ page: n, fn, arg = null, timeout = 30_000 }) {
    const h = await page(n).page.waitForFunction(inPage(fn), arg, { timeout, polling: 50 });
    return h.jsonValue();
  },
  eval: ({ page: n, fn, arg = null }) => page(n).page.evaluate(inPage(fn), arg),
  offline: ({ page: n, offline }) => page(n).context.setOffline(offline),
  reload: ({ page: n }) => page(n).page.reload().then(() => null),
  colorScheme: ({ page: n, colorScheme }) => page(n).page.emulateMedia({ colorScheme }),
  viewport: ({ page: n, width, height }) => page(n).page.setViewportSize({ width, height }),
  screenshot: ({ page: n, path }) => page(n).page.screenshot({ path }).then(() => null),
  logs: ({ page: n }) => page(n).logs,
  async push({ page: n, data }) {
    const p = page(n);
    if (!p.cdp) {
      p.cdp = await p.context.newCDPSession(p.page);
      p.regs = new Map();
      p.cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => e.registrations.forEach((r) => p.regs.set(r.registrationId, r)));
      await p.cdp.send('ServiceWorker.enable');
    }
    const origin = new URL(p.page.url()).origin;
    const find = () => [...p.regs.values()].find((r) => !r.isDeleted && r.scopeURL.startsWith(origin + '/'));
    for (let i = 0; i < 200 && !find(); i++) await new Promise((r) => setTimeout(r, 50));
    const reg = find();
    if (!reg) throw new Error(`no service worker registration for ${origin} in ${JSON.stringify([...p.regs.values()])}`);
    await p.cdp.send('ServiceWorker.deliverPushMessage', { origin, registrationId: reg.registrationId, data: JSON.stringify(data) });
  },
  async close({ page: n }) {
    await page(n).context.close();
    pages.delete(n);
  },
  async quit() {
    for (const b of browsers.values()) await b.close().catch(() => {});
    process.exit(0);
  },
};

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
      const f = commands[msg.cmd];
      if (!f) throw new Error(`unknown command ${msg.cmd}`);
      const value = await f(msg);
      out({ id: msg.id, ok: true, value: value ?? null });
    } catch (e) {
      out({ id: msg?.id ?? 0, ok: false, error: String(e?.message ?? e) });
    }
  });
});
rl.on('close', () => chain.then(() => commands.quit()));
