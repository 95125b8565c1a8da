// sw.js: the web app's service worker, served at /sw.js (a fixed URL, the
// whole app its scope; edge/webapp). It shows Web Push notifications
// (docs/push.md, "What a push says"):
//
//   {push_id, type: "message" | "clear", conv_id, seq, count, tag, title, sender, body}
//
// "message" shows a notification with the push's tag (one per
// conversation; a newer one replaces it), unless a notification of that
// push_id was shown already; "clear" closes the notifications with that
// tag (the messages were read elsewhere). A click focuses a window of the
// app, at the conversation, or opens one.

const shown = new Set(); // push_ids shown since this worker started

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('push', (e) => {
  let p = {};
  try {
    p = e.data ? e.data.json() : {};
  } catch {
    return;
  }
  e.waitUntil(handle(p));
});

async function handle(p) {
  const reg = self.registration;
  if (p.type === 'clear') {
    for (const n of await reg.getNotifications(p.tag ? { tag: p.tag } : {})) {
      if (p.tag || n.data?.convId === p.conv_id) n.close();
    }
    return;
  }
  if (p.type !== 'message') return;
  if (p.push_id) {
    if (shown.has(p.push_id)) return;
    shown.add(p.push_id); // before any await: a repeat may run alongside
    const open = await reg.getNotifications();
    if (open.some((n) => n.data?.pushId === p.push_id)) return;
  }
  const title = p.title || p.sender || 'parley';
  let body = p.body ?? '';
  if (p.title && p.sender) body = body ? `${p.sender}: ${body}` : p.sender;
  if (!body) body = p.count > 1 ? `${p.count} new messages` : 'New message';
  await reg.showNotification(title, {
    body, tag: p.tag || `parley:${p.conv_id}`, renotify: !!p.tag,
    data: { pushId: p.push_id, convId: p.conv_id, seq: p.seq },
  });
}

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const conv = e.notification.data?.convId;
  const url = new URL(conv ? `/c/${encodeURIComponent(conv)}` : '/', self.location.origin).href;
  e.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const w = wins.find((c) => new URL(c.url).origin === self.location.origin);
    if (w) {
      await w.focus();
      w.postMessage({ type: 'open', convId: conv });
      return;
    }
    await self.clients.openWindow(url);
  })());
});
