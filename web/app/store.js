// store.js: the app's state, fed by the /v1 API (rest.js) and the live
// session (parley.js's Client). The UI reads it and calls its actions;
// version changes whenever anything does.

import { signal } from './vendor/signals.mjs';
import { Client, DELIVERED, READ, BACKWARD } from '../parley.js';

const text = new TextDecoder();
const PAGE = 50;

export function createStore(api) {
  const version = signal(0);
  let queued = false;
  const changed = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      version.value++;
    });
  };

  const s = {
    version,
    api,
    me: null, // the user
    status: { state: 'connecting', transport: '' },
    convs: new Map(), // id -> {id, type, title, members: [{user_id, role}], lastSeq, readSeq, lastTs, preview}
    users: new Map(), // id -> user
    msgs: new Map(), // conv -> Map(seq -> message)
    outbox: new Map(), // conv -> Map(clientMsgId -> {clientMsgId, body, state: 'sending'|'failed', ts, error})
    oldest: new Map(), // conv -> the next backward cursor (0: no more), absent: not loaded
    loading: new Set(),
    marks: new Map(), // conv -> Map(user -> {delivered, read})
    presence: new Map(), // user -> {online, lastSeen}
    typing: new Map(), // conv -> Set(user)
    current: null,
    focus: null, // {convId, seq}: the message a search hit opened, highlighted for a moment
    client: null,
    error: '',
  };

  const conv = (id) => s.convs.get(id);
  const name = (id) => {
    const u = s.users.get(id);
    return u ? u.display_name || u.username : id === s.me?.id ? 'you' : '…';
  };
  s.name = name;
  s.title = (c) => {
    if (!c) return '';
    if (c.type === 'group') return c.title || 'group';
    const other = c.members.find((m) => m.user_id !== s.me?.id);
    return other ? name(other.user_id) : name(s.me?.id);
  };
  s.other = (c) => (c?.type === 'direct' ? c.members.find((m) => m.user_id !== s.me?.id)?.user_id : null);
  s.unread = (c) => Math.max(0, c.lastSeq - c.readSeq);
  s.totalUnread = () => [...s.convs.values()].reduce((n, c) => n + s.unread(c), 0);
  s.sorted = () => [...s.convs.values()].sort((a, b) => b.lastTs - a.lastTs || (a.id < b.id ? -1 : 1));

  function mark(convId, user, type, seq) {
    let m = s.marks.get(convId);
    if (!m) s.marks.set(convId, (m = new Map()));
    const v = m.get(user) ?? { delivered: 0, read: 0 };
    if (type === READ) v.read = Math.max(v.read, seq);
    v.delivered = Math.max(v.delivered, type === READ ? v.read : seq);
    m.set(user, v);
  }

  // tick is an own message's state: sending, failed, sent, delivered or read
  // (by every other member).
  s.tick = (convId, seq) => {
    const c = conv(convId);
    const others = (c?.members ?? []).filter((m) => m.user_id !== s.me.id);
    if (!others.length) return 'sent';
    const m = s.marks.get(convId) ?? new Map();
    const all = (k) => others.every((o) => (m.get(o.user_id)?.[k] ?? 0) >= seq);
    return all('read') ? 'read' : all('delivered') ? 'delivered' : 'sent';
  };

  // watch names the members of every conversation to the edge, so their
  // presence comes (a conversation started after the session began too).
  let watchTimer = null;
  let watching = '';
  function watch() {
    clearTimeout(watchTimer);
    watchTimer = setTimeout(() => {
      const ids = [...new Set([...s.convs.values()].flatMap((c) => c.members.map((m) => m.user_id)))]
        .filter((id) => id !== s.me?.id).sort().slice(0, 1000);
      const key = ids.join(',');
      if (!s.client || key === watching) return;
      watching = key;
      s.client.subscribePresence(ids).catch(() => (watching = ''));
    }, 100);
  }

  function addConv(c) {
    const old = conv(c.id);
    if (!old || (old.members.length !== (c.members ?? []).length)) queueMicrotask(watch);
    s.convs.set(c.id, {
      id: c.id, type: c.type, title: c.title, members: c.members ?? [],
      lastSeq: Math.max(old?.lastSeq ?? 0, c.last_seq ?? 0),
      readSeq: Math.max(old?.readSeq ?? 0, c.read_seq ?? 0),
      lastTs: old?.lastTs ?? c.created_ts ?? 0, preview: old?.preview ?? '',
    });
    // Messages that came before the conversation was known (a push for
    // one someone just added this user to) set its activity and preview.
    const box = s.msgs.get(c.id);
    if (!old && box?.size) {
      const last = box.get(Math.max(...box.keys()));
      const cv = conv(c.id);
      cv.lastTs = Math.max(cv.lastTs, last.tsUnixMs);
      cv.preview = last.kind === 1 ? systemText(last) : last.text;
      for (const m of box.values()) if (m.senderUserId === s.me?.id) cv.readSeq = Math.max(cv.readSeq, m.seq);
    }
  }

  async function learnUsers(ids) {
    const missing = [...new Set(ids)].filter((id) => !s.users.has(id));
    if (!missing.length) return;
    for (let i = 0; i < missing.length; i += 100) {
      const r = await api.users(missing.slice(i, i + 100));
      for (const u of r.users) s.users.set(u.id, u);
    }
    changed();
  }

  async function refreshConv(id) {
    try {
      const r = await api.conversation(id);
      addConv(r.conversation);
      await learnUsers(r.conversation.members.map((m) => m.user_id));
    } catch (e) {
      if (e.codeName === 'not_member' || e.codeName === 'not_found') {
        s.convs.delete(id);
        if (s.current === id) s.current = null;
      }
    }
    changed();
  }

  // take adds a message from any source (push, catch-up, history page).
  function take(m) {
    let box = s.msgs.get(m.convId);
    if (!box) s.msgs.set(m.convId, (box = new Map()));
    const out = s.outbox.get(m.convId);
    if (m.senderUserId === s.me.id && out?.has(m.clientMsgId)) out.delete(m.clientMsgId);
    box.set(m.seq, { ...m, text: text.decode(m.body) });
    // A message ends its sender's typing there (the "stopped" datagram may
    // come later, or not at all).
    if (s.typing.get(m.convId)?.delete(m.senderUserId)) changed();
    // A sender has received and read what it sent.
    mark(m.convId, m.senderUserId, READ, m.seq);
    const c = conv(m.convId);
    if (c) {
      c.lastSeq = Math.max(c.lastSeq, m.seq);
      if (m.senderUserId === s.me.id) c.readSeq = Math.max(c.readSeq, m.seq);
      if (m.seq >= c.lastSeq) {
        c.lastTs = Math.max(c.lastTs, m.tsUnixMs);
        c.preview = m.kind === 1 ? systemText(m) : text.decode(m.body);
      }
    }
    changed();
  }

  function systemText(m) {
    try {
      const ev = JSON.parse(text.decode(m.body));
      const who = (ev.users ?? []).map(name).join(', ');
      switch (ev.event) {
        case 'members_added': return `${name(ev.by)} added ${who}`;
        case 'members_removed': return `${name(ev.by)} removed ${who}`;
        case 'member_left': return `${who} left`;
        case 'roles_changed': return `${name(ev.by)} changed roles`;
        default: return ev.event.replaceAll('_', ' ');
      }
    } catch {
      return 'conversation changed';
    }
  }
  s.systemText = systemText;

  const deliveredTimers = new Map();
  function reportDelivered(convId) {
    if (deliveredTimers.has(convId)) return;
    deliveredTimers.set(convId, setTimeout(() => {
      deliveredTimers.delete(convId);
      const seq = s.client.watermark(convId);
      if (seq > 0) s.client.receipt(convId, seq, DELIVERED).catch(() => {});
    }, 300));
  }

  s.start = async () => {
    const me = await api.me();
    s.me = me.user;
    s.users.set(me.user.id, me.user);
    const list = await api.conversations();
    for (const c of list.conversations) addConv(c);
    changed();
    learnUsers(list.conversations.flatMap((c) => c.members.map((m) => m.user_id))).catch(() => {});
    const cfg = await fetch('/config.json', { cache: 'no-store' }).then((r) => r.json()).catch(() => ({}));
    const wsURL = new URL(cfg.websocket || '/v1/ws', location.href);
    wsURL.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const hashes = async () => {
      const r = await fetch(cfg.cert_hashes, { cache: 'no-store' });
      if (!r.ok) return [];
      return (await r.json()).hashes;
    };
    const watermarks = Object.fromEntries(list.conversations.map((c) => [c.id, c.last_seq]));
    s.client = new Client({
      webtransport: cfg.webtransport && !window.parleyNoWebTransport ? { url: cfg.webtransport, certHashes: hashes } : null,
      websocket: { url: wsURL.href },
      token: () => api.token(),
      refresh: () => api.refresh(),
      deviceId: api.saved.deviceId,
      watermarks,
      onMessage: (m) => {
        if (!conv(m.convId)) refreshConv(m.convId);
        else if (m.kind === 1) refreshConv(m.convId);
        take(m);
        if (m.senderUserId !== s.me.id) reportDelivered(m.convId);
      },
      onReceipt: (r) => {
        if (r.userId) mark(r.convId, r.userId, r.type, r.seq);
        const c = conv(r.convId);
        if (c && r.userId === s.me.id && r.type === READ) c.readSeq = Math.max(c.readSeq, r.seq);
        changed();
      },
      onPresence: (p) => {
        s.presence.set(p.userId, { online: p.online, lastSeen: p.lastSeenUnixMs });
        changed();
      },
      onTyping: (t) => {
        if (t.userId === s.me.id) return;
        let set = s.typing.get(t.convId);
        if (!set) s.typing.set(t.convId, (set = new Set()));
        if (t.typing) set.add(t.userId);
        else set.delete(t.userId);
        changed();
      },
      onSync: (r) => {
        for (const d of r.changed) {
          const c = conv(d.convId);
          if (!c) refreshConv(d.convId);
          else c.readSeq = Math.max(c.readSeq, d.readSeq);
        }
        changed();
      },
      onState: (st) => {
        if (st.state === 'online' && s.status.state !== 'online' && s.client?.connections > 1) relist();
        s.status = st;
        if (st.state === 'revoked') api.onSignedOut();
        changed();
      },
    }).start();
    watch();
    // Previews and activity times: each conversation's newest message.
    for (const c of s.sorted().slice(0, 100)) {
      if (c.lastSeq > 0) s.client.history({ convId: c.id, limit: 1, direction: BACKWARD }).then((h) => h.messages.forEach(take)).catch(() => {});
    }
  };

  // The list is read again now and then, and when the session comes back:
  // a conversation someone added this user to shows before its first
  // message does.
  async function relist() {
    try {
      const list = await api.conversations();
      for (const c of list.conversations) addConv(c);
      learnUsers(list.conversations.flatMap((c) => c.members.map((m) => m.user_id))).catch(() => {});
      changed();
    } catch {
      // the next time
    }
  }
  const relister = setInterval(() => document.visibilityState === 'visible' && relist(), 30_000);

  s.stop = () => {
    clearInterval(relister);
    s.client?.close();
  };

  // open shows a conversation, loading its newest page and its receipts.
  s.open = async (id) => {
    s.current = id;
    changed();
    if (!id || !conv(id)) return;
    if (!s.oldest.has(id)) await s.older(id);
    api.receipts(id).then((r) => {
      for (const m of r.members ?? []) {
        mark(id, m.user_id, DELIVERED, m.delivered_seq);
        mark(id, m.user_id, READ, m.read_seq);
      }
      changed();
    }).catch(() => {});
  };

  // jump opens a conversation at message seq (a search hit): history is
  // read back page by page until it holds seq, and the message is
  // highlighted for a moment.
  let focusTimer = null;
  s.jump = async (convId, seq) => {
    await s.open(convId);
    for (let i = 0; i < 40 && !s.msgs.get(convId)?.has(seq) && s.oldest.get(convId) !== 0; i++) {
      if (s.loading.has(convId)) await new Promise((r) => setTimeout(r, 50));
      else await s.older(convId);
    }
    if (s.current !== convId) return;
    s.focus = { convId, seq };
    clearTimeout(focusTimer);
    focusTimer = setTimeout(() => {
      s.focus = null;
      changed();
    }, 3000);
    changed();
  };
  s.learnUsers = learnUsers;

  // older loads the page before the oldest message held.
  s.older = async (id) => {
    if (s.loading.has(id) || s.oldest.get(id) === 0) return;
    s.loading.add(id);
    changed();
    try {
      const h = await s.client.history({ convId: id, cursor: s.oldest.get(id) ?? 0, limit: PAGE, direction: BACKWARD });
      h.messages.forEach(take);
      s.oldest.set(id, h.nextCursor);
      learnUsers(h.messages.map((m) => m.senderUserId)).catch(() => {});
    } catch (e) {
      s.error = e.message;
    } finally {
      s.loading.delete(id);
      changed();
    }
  };

  // send shows the message at once as sending, then sends it; retry sends
  // a failed one again with the same client_msg_id.
  s.send = (convId, body, clientMsgId = crypto.randomUUID()) => {
    let out = s.outbox.get(convId);
    if (!out) s.outbox.set(convId, (out = new Map()));
    const item = out.get(clientMsgId) ?? { clientMsgId, body, ts: Date.now() };
    item.state = 'sending';
    item.error = '';
    out.set(clientMsgId, item);
    changed();
    s.client.send(convId, body, { clientMsgId, timeoutMs: 15_000 }).then((ack) => {
      if (out.has(clientMsgId)) {
        out.delete(clientMsgId);
        take({
          convId, seq: ack.seq, msgId: ack.msgId, clientMsgId, senderUserId: s.me.id, senderDeviceId: api.saved.deviceId,
          tsUnixMs: ack.tsUnixMs, body: new TextEncoder().encode(body), contentType: '', kind: 0, attachments: [],
        });
      }
    }, (e) => {
      item.state = 'failed';
      item.error = e.message;
      changed();
    });
    s.stoppedTyping(convId);
  };
  s.retry = (convId, clientMsgId) => s.send(convId, s.outbox.get(convId).get(clientMsgId).body, clientMsgId);

  // seen reports the read position once messages up to seq were on screen.
  const readTimers = new Map();
  s.seen = (convId, seq) => {
    const c = conv(convId);
    if (!c || seq <= c.readSeq) return;
    c.readSeq = seq;
    changed();
    clearTimeout(readTimers.get(convId));
    readTimers.set(convId, setTimeout(() => {
      s.client.receipt(convId, conv(convId)?.readSeq ?? seq, READ).catch(() => {});
    }, 200));
  };

  // Typing: an indicator at most every 3 s while the user types (the edge
  // keeps each for 5 s), and "stopped" when the text is sent or cleared.
  const typingSent = new Map(); // conv -> when the last indicator went
  s.typed = (convId, text) => {
    if (!text) return s.stoppedTyping(convId);
    if (Date.now() - (typingSent.get(convId) ?? 0) < 3_000) return;
    typingSent.set(convId, Date.now());
    s.client.typing(convId, true);
  };
  s.stoppedTyping = (convId) => {
    if (!typingSent.has(convId)) return;
    typingSent.delete(convId);
    s.client.typing(convId, false);
  };

  s.createDirect = async (username) => {
    const r = await api.createConversation({ type: 'direct', usernames: [username] });
    addConv(r.conversation);
    await learnUsers(r.conversation.members.map((m) => m.user_id));
    return r.conversation.id;
  };
  s.createGroup = async (title, usernames) => {
    const r = await api.createConversation({ type: 'group', title, usernames });
    addConv(r.conversation);
    await learnUsers(r.conversation.members.map((m) => m.user_id));
    return r.conversation.id;
  };
  s.addMembers = async (id, usernames) => {
    await api.addMembers(id, { usernames });
    await refreshConv(id);
  };
  s.removeMember = async (id, userId) => {
    await api.removeMember(id, userId);
    if (userId === s.me.id) {
      s.convs.delete(id);
      if (s.current === id) s.current = null;
      changed();
    } else await refreshConv(id);
  };

  return s;
}
