// main.js: the web app's UI (Preact + htm, no build step). State and
// actions are in store.js; the protocol in ../parley.js and ../rest.js.

import { h, render } from './vendor/preact.mjs';
import { useEffect, useRef, useState } from './vendor/hooks.mjs';
import htm from './vendor/htm.mjs';
import { Api } from '../rest.js';
import { createStore } from './store.js';
import { search, attachments } from './modules.js';

const html = htm.bind(h);
const ICON = new URL('./icon.svg', import.meta.url).href;
const Logo = () => html`<img class="logo" src=${ICON} alt="" width="24" height="24" />`;
let store = null;

// use subscribes a component to the store: @preact/signals re-renders a
// component whose props did not change only when a signal it read did.
function use() {
  store.version.value;
  return store;
}

const api = new Api({ onSignedOut: () => signedOut() });

function signedOut() {
  store?.stop();
  store = null;
  history.replaceState(null, '', '/');
  draw();
}

function route() {
  const m = location.pathname.match(/^\/c\/([a-z0-9_-]+)$/);
  return m ? m[1] : null;
}

function go(id) {
  history.pushState(null, '', id ? `/c/${id}` : '/');
  store.open(id);
}
window.addEventListener('popstate', () => store?.open(route()));

// ---- signing in ----

function Auth() {
  const [mode, setMode] = useState('login');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const v = Object.fromEntries(f.entries());
    setBusy(true);
    setErr('');
    try {
      if (mode === 'signup') await api.register({ workspace: v.workspace, username: v.username, password: v.password, displayName: v.display_name });
      else await api.login(v);
      startApp();
    } catch (e2) {
      setErr(e2.message);
    } finally {
      setBusy(false);
    }
  };
  const signup = mode === 'signup';
  return html`<main class="auth">
    <form class="card" onSubmit=${submit} aria-label=${signup ? 'Sign up' : 'Log in'}>
      <h1><${Logo} /> parley</h1>
      <p class="muted">${signup ? 'Create a workspace, or join one by its name.' : 'Log in to your workspace.'}</p>
      <label>Workspace<input name="workspace" required autocomplete="organization" autocapitalize="none" /></label>
      <label>Username<input name="username" required autocomplete="username" autocapitalize="none" /></label>
      ${signup && html`<label>Display name<input name="display_name" autocomplete="name" /></label>`}
      <label>Password<input name="password" type="password" required minlength=${signup ? 8 : 1} autocomplete=${signup ? 'new-password' : 'current-password'} /></label>
      ${err && html`<p class="error" role="alert">${err}</p>`}
      <button class="primary" disabled=${busy}>${signup ? 'Sign up' : 'Log in'}</button>
      <button type="button" class="link" onClick=${() => setMode(signup ? 'login' : 'signup')}>
        ${signup ? 'I have an account: log in' : 'New here? Sign up'}
      </button>
    </form>
  </main>`;
}

// ---- the app ----

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function Presence({ user }) {
  const p = use().presence.get(user);
  if (!user || !p) return null;
  const label = p.online ? 'online' : p.lastSeen ? `last seen ${ago(p.lastSeen)}` : 'offline';
  return html`<span class=${'dot' + (p.online ? ' on' : '')} data-online=${p.online ? 'true' : 'false'} role="img" aria-label=${label} title=${label}></span>`;
}

// ---- search (the search module) ----

// Search is the box at the top of the list and, while it holds a query,
// the hits in the list's place: newest first or by relevance, a page at a
// time ("More" follows the cursor). Ctrl/Cmd+K or "/" focuses it, Esc
// closes it.
function Search({ onResults }) {
  const s = use();
  const box = useRef(null);
  const [q, setQ] = useState('');
  const [sort, setSort] = useState('newest');
  const [res, setRes] = useState(null); // {q, sort, hits, total, nextCursor}
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const gen = useRef(0);
  const run = async (query, order, cursor = '', prev = []) => {
    const my = ++gen.current;
    if (!query.trim()) {
      setRes(null);
      onResults(false);
      return;
    }
    setBusy(true);
    try {
      const r = await search.query(api, { q: query, sort: order, cursor });
      if (my !== gen.current) return;
      s.learnUsers(r.hits.map((h) => h.senderId)).catch(() => {});
      setRes((old) => ({ q: query, sort: order, hits: [...prev, ...r.hits], total: cursor ? old?.total ?? 0 : r.total, nextCursor: r.nextCursor }));
      setErr('');
      onResults(true);
    } catch (e) {
      if (my === gen.current) setErr(e.message);
    } finally {
      if (my === gen.current) setBusy(false);
    }
  };
  const timer = useRef(null);
  const onInput = (e) => {
    setQ(e.target.value);
    clearTimeout(timer.current);
    const v = e.target.value;
    timer.current = setTimeout(() => run(v, sort), 250);
  };
  const close = () => {
    clearTimeout(timer.current);
    gen.current++;
    setQ('');
    setRes(null);
    setErr('');
    onResults(false);
    box.current?.blur();
  };
  useEffect(() => {
    const onKey = (e) => {
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
      if (((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') || (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey)) {
        e.preventDefault();
        box.current?.focus();
        box.current?.select();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  const order = (o) => {
    setSort(o);
    run(q, o);
  };
  const open = (h) => {
    history.pushState(null, '', `/c/${h.convId}`);
    s.jump(h.convId, h.seq);
  };
  return html`<div class="search" role="search">
    <input ref=${box} type="search" value=${q} placeholder="Search (Ctrl+K)" aria-label="Search messages"
      onInput=${onInput} onKeyDown=${(e) => {
        if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
        if (e.key === 'Enter') { e.preventDefault(); clearTimeout(timer.current); run(q, sort); }
      }} />
    ${res && html`<div class="search-bar row">
      <span class="muted" role="status">${res.total} ${res.total === 1 ? 'result' : 'results'}</span>
      <span class="seg" role="group" aria-label="Order">
        <button type="button" class=${'link' + (sort === 'newest' ? ' on' : '')} aria-pressed=${sort === 'newest'} onClick=${() => order('newest')}>Newest</button>
        <button type="button" class=${'link' + (sort === 'relevance' ? ' on' : '')} aria-pressed=${sort === 'relevance'} onClick=${() => order('relevance')}>Relevance</button>
      </span>
      <button type="button" class="icon" aria-label="Close search" onClick=${close}>×</button>
    </div>`}
    ${err && html`<p class="error" role="alert">${err}</p>`}
    ${res && html`<ul class="hits" aria-label="Search results">
      ${res.hits.map((h) => {
        const c = s.convs.get(h.convId);
        return html`<li key=${`${h.convId}/${h.seq}`}>
          <a class="hit" href=${`/c/${h.convId}`} data-conv=${h.convId} data-seq=${h.seq}
            onClick=${(e) => { e.preventDefault(); open(h); }}>
            <span class="hit-head"><span class="hit-conv">${c ? s.title(c) : '…'}</span>
              <span class="muted">${s.name(h.senderId)} · <time datetime=${new Date(h.ts).toISOString()}>${new Date(h.ts).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}</time></span></span>
            <span class="snippet">${h.segments.map((g) => (g.mark ? html`<mark>${g.text}</mark>` : g.text))}</span>
          </a>
        </li>`;
      })}
      ${res.hits.length === 0 && html`<li class="empty muted">No messages match.</li>`}
      ${res.nextCursor && html`<li class="center"><button type="button" class="link" disabled=${busy}
        onClick=${() => run(res.q, res.sort, res.nextCursor, res.hits)}>More</button></li>`}
    </ul>`}
  </div>`;
}

// ---- notifications (Web Push through sw.js) ----

const pushable = 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
const swReady = pushable ? navigator.serviceWorker.register('/sw.js').catch((e) => { console.warn('service worker', e); return null; }) : Promise.resolve(null);
if (pushable) {
  swReady.then((r) => (window.parleySW = r)); // for tests and the console
  // A notification's click in a window that is open: show its conversation.
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data?.type === 'open' && e.data.convId && store) go(e.data.convId);
  });
}

function b64url(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

// Notifications is the toggle: on asks permission (on this click, never
// by itself), subscribes with the server's VAPID key and registers the
// subscription as this device's push target; off removes both.
function Notifications() {
  const [on, setOn] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  useEffect(() => {
    swReady.then(async (reg) => {
      const sub = await reg?.pushManager.getSubscription();
      setOn(!!sub && Notification.permission === 'granted');
    }).catch(() => {});
  }, []);
  if (!pushable) return null;
  const toggle = async () => {
    setBusy(true);
    setErr('');
    try {
      const reg = await swReady;
      if (!reg) throw new Error('no service worker');
      if (on) {
        const sub = await reg.pushManager.getSubscription();
        await api.removePush();
        await sub?.unsubscribe();
        setOn(false);
        return;
      }
      if ((await Notification.requestPermission()) !== 'granted') throw new Error('notifications are blocked');
      const key = await api.vapidKey();
      if (!key) throw new Error('this server sends no push');
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64url(key) });
      await api.setPush(sub.toJSON());
      setOn(true);
    } catch (e) {
      setErr(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<button type="button" class="link notify" role="switch" aria-checked=${on} disabled=${busy}
    onClick=${toggle} aria-label="Notifications" title=${err || (on ? 'Notifications on' : 'Notifications off')}>
    ${on ? '🔔' : '🔕'}${err && html`<span class="error" role="alert"> ${err}</span>`}</button>`;
}

function Sidebar({ onNew }) {
  const s = use();
  const list = s.sorted();
  const [searching, setSearching] = useState(false);
  return html`<nav class="side" aria-label="Conversations">
    <header class="bar">
      <h1 class="brand"><${Logo} /> parley</h1>
      <span class="status" data-state=${s.status.state} data-transport=${s.client?.transport ?? ''}
        aria-label=${`connection ${s.status.state}`} title=${`${s.status.state} ${s.client?.transport ?? ''}`}></span>
      <button class="icon" onClick=${onNew} aria-label="New conversation" title="New conversation">+</button>
    </header>
    ${search && html`<${Search} onResults=${setSearching} />`}
    <ul class="convs" hidden=${searching}>
      ${list.map((c) => {
        const n = s.unread(c);
        const other = s.other(c);
        return html`<li key=${c.id}>
          <a href=${`/c/${c.id}`} class=${'conv' + (c.id === s.current ? ' active' : '')} data-conv=${c.id}
            aria-current=${c.id === s.current ? 'page' : undefined}
            aria-label=${`${s.title(c)}${n ? `, ${n} unread` : ''}`}
            onClick=${(e) => { e.preventDefault(); go(c.id); }}>
            <span class="avatar" aria-hidden="true">${(s.title(c)[0] ?? '?').toUpperCase()}${other && html`<${Presence} user=${other} />`}</span>
            <span class="conv-text"><span class="conv-title">${s.title(c)}</span><span class="preview">${c.preview}</span></span>
            ${n > 0 && html`<span class="badge" aria-hidden="true">${n}</span>`}
          </a>
        </li>`;
      })}
      ${list.length === 0 && html`<li class="empty muted">No conversations yet. Start one with +.</li>`}
    </ul>
    <footer class="bar me">
      <span>${s.me && (s.me.display_name || s.me.username)}</span>
      <${Notifications} />
      <button class="link" onClick=${() => api.logout()} aria-label="Log out">Log out</button>
    </footer>
  </nav>`;
}

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const y = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === y.toDateString()) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
}

const timeOf = (ts) => new Date(ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
const TICKS = { sending: '◷', failed: '!', sent: '✓', delivered: '✓✓', read: '✓✓' };

// Rows: day separators, then groups of one sender's messages within 5 minutes.
function rows(convId) {
  const s = use();
  const msgs = [...(s.msgs.get(convId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  const out = [...(s.outbox.get(convId)?.values() ?? [])].map((o) => ({
    pending: o, senderUserId: s.me.id, tsUnixMs: o.ts, text: o.body, kind: 0, key: o.clientMsgId,
  }));
  const all = [...msgs, ...out];
  const items = [];
  let day = '';
  let group = null;
  for (const m of all) {
    const d = new Date(m.tsUnixMs).toDateString();
    if (d !== day) {
      day = d;
      items.push({ day: dayLabel(m.tsUnixMs), key: `day-${d}` });
      group = null;
    }
    if (m.kind === 1) {
      items.push({ system: m, key: `sys-${m.seq}` });
      group = null;
      continue;
    }
    if (!group || group.sender !== m.senderUserId || m.tsUnixMs - group.last > 5 * 60_000) {
      group = { sender: m.senderUserId, msgs: [], last: 0, key: `g-${m.seq ?? m.key}` };
      items.push(group);
    }
    group.msgs.push(m);
    group.last = m.tsUnixMs;
  }
  return items;
}

function Message({ m, convId, mine }) {
  const s = use();
  const state = m.pending ? m.pending.state : mine ? s.tick(convId, m.seq) : null;
  const focused = s.focus?.convId === convId && s.focus.seq === m.seq;
  return html`<li class=${'msg' + (mine ? ' mine' : '') + (focused ? ' focused' : '')} data-seq=${m.seq ?? ''} data-client-msg-id=${m.clientMsgId ?? m.key}
      data-state=${state ?? ''}>
    <span class="bubble">
      <span class="body">${m.text}</span>
      ${m.attachments?.length > 0 && attachments && html`<span class="attachments"></span>`}
      <span class="meta">
        <time datetime=${new Date(m.tsUnixMs).toISOString()}>${timeOf(m.tsUnixMs)}</time>
        ${state && html`<span class=${'tick ' + state} role="img" aria-label=${state}>${TICKS[state]}</span>`}
      </span>
    </span>
    ${state === 'failed' && html`<button class="link retry" onClick=${() => s.retry(convId, m.pending.clientMsgId)}
      aria-label="Retry sending">Not sent. Retry</button>`}
  </li>`;
}

function Thread({ convId }) {
  const s = use();
  const scroller = useRef(null);
  const atBottom = useRef(true);
  const prevHeight = useRef(0);
  const loadingOlder = useRef(false);
  const items = rows(convId);
  const count = items.length;

  // Keep the view at the bottom as messages arrive, and in place when an
  // older page is added above.
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (loadingOlder.current && !s.loading.has(convId)) {
      el.scrollTop += el.scrollHeight - prevHeight.current;
      loadingOlder.current = false;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  });
  useEffect(() => {
    atBottom.current = true;
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [convId]);
  // A search hit: scroll to its message once it is there.
  const focusedOn = useRef(null);
  useEffect(() => {
    const f = s.focus;
    if (!f || f.convId !== convId || focusedOn.current === f) return;
    const li = scroller.current?.querySelector(`li.msg[data-seq="${f.seq}"]`);
    if (!li) return;
    focusedOn.current = f;
    li.scrollIntoView({ block: 'center' });
    const el = scroller.current;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  });

  // The read position moves as messages are actually on screen.
  useEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    const io = new IntersectionObserver((entries) => {
      if (document.visibilityState !== 'visible') return;
      let max = 0;
      for (const e of entries) if (e.isIntersecting) max = Math.max(max, Number(e.target.dataset.seq) || 0);
      if (max) s.seen(convId, max);
    }, { root: el, threshold: 0.6 });
    el.querySelectorAll('li.msg[data-seq]:not([data-seq=""]), li.system[data-seq]').forEach((n) => io.observe(n));
    return () => io.disconnect();
  });

  const onScroll = () => {
    const el = scroller.current;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 80 && s.oldest.get(convId) !== 0 && !s.loading.has(convId)) {
      prevHeight.current = el.scrollHeight;
      loadingOlder.current = true;
      s.older(convId);
    }
  };

  return html`<div class="thread" ref=${scroller} onScroll=${onScroll} role="log" aria-label="Messages" aria-live="polite" data-count=${count}>
    ${s.loading.has(convId) && html`<p class="muted center" role="status">Loading older messages…</p>`}
    ${s.oldest.get(convId) === 0 && html`<p class="muted center">The beginning of the conversation.</p>`}
    <ol class="items">
      ${items.map((it) => {
        if (it.day) return html`<li key=${it.key} class="day" role="separator"><span>${it.day}</span></li>`;
        if (it.system) return html`<li key=${it.key} class="system" data-seq=${it.system.seq}>${s.systemText(it.system)}</li>`;
        const mine = it.sender === s.me.id;
        return html`<li key=${it.key} class=${'group' + (mine ? ' mine' : '')}>
          ${!mine && html`<div class="sender">${s.name(it.sender)}</div>`}
          <ol class="msgs">${it.msgs.map((m) => html`<${Message} key=${m.seq ?? m.key} m=${m} convId=${convId} mine=${mine} />`)}</ol>
        </li>`;
      })}
    </ol>
  </div>`;
}

function Composer({ convId }) {
  const s = use();
  const ta = useRef(null);
  useEffect(() => ta.current?.focus(), [convId]);
  const submit = () => {
    const v = ta.current.value.trim();
    if (!v) return;
    s.send(convId, v);
    ta.current.value = '';
  };
  const onKey = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  };
  return html`<form class="composer" onSubmit=${(e) => { e.preventDefault(); submit(); }}>
    ${attachments && html`<button type="button" class="icon" aria-label="Attach a file">📎</button>`}
    <textarea ref=${ta} rows="1" placeholder="Message" aria-label="Message" onKeyDown=${onKey}
      onInput=${(e) => s.typed(convId, e.target.value)} onBlur=${() => s.stoppedTyping(convId)}></textarea>
    <button class="primary" aria-label="Send">Send</button>
  </form>`;
}

function Typing({ convId }) {
  const s = use();
  const who = [...(s.typing.get(convId) ?? [])].map(s.name);
  return html`<div class="typing" role="status" aria-live="polite">${who.length > 0 &&
    `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…`}</div>`;
}

function Members({ c, onClose }) {
  const s = use();
  const [err, setErr] = useState('');
  const add = async (e) => {
    e.preventDefault();
    const names = new FormData(e.target).get('usernames').split(/[\s,]+/).filter(Boolean);
    try {
      await s.addMembers(c.id, names);
      e.target.reset();
      setErr('');
    } catch (e2) {
      setErr(e2.message);
    }
  };
  const remove = (id) => s.removeMember(c.id, id).catch((e) => setErr(e.message));
  return html`<aside class="panel" aria-label="Members">
    <header class="bar"><h2>Members</h2><button class="icon" onClick=${onClose} aria-label="Close members">×</button></header>
    <ul class="members">${c.members.map((m) => html`<li key=${m.user_id}>
      <${Presence} user=${m.user_id} /> <span>${s.name(m.user_id)}${m.user_id === s.me.id ? ' (you)' : ''}</span>
      <span class="muted">${m.role !== 'member' ? m.role : ''}</span>
      ${c.type === 'group' && m.user_id !== s.me.id && html`<button class="link" onClick=${() => remove(m.user_id)}
        aria-label=${`Remove ${s.name(m.user_id)}`}>Remove</button>`}
    </li>`)}</ul>
    ${c.type === 'group' && html`<form onSubmit=${add} class="row">
      <input name="usernames" placeholder="username, …" aria-label="Add members by username" required />
      <button class="primary">Add</button></form>
      <button class="danger" onClick=${() => remove(s.me.id).then(() => go(null))}>Leave group</button>`}
    ${err && html`<p class="error" role="alert">${err}</p>`}
  </aside>`;
}

function Conversation({ c }) {
  const s = use();
  const [members, setMembers] = useState(false);
  const other = s.other(c);
  const p = other && s.presence.get(other);
  const sub = c.type === 'group' ? `${c.members.length} members`
    : p ? (p.online ? 'online' : p.lastSeen ? `last seen ${ago(p.lastSeen)}` : '') : '';
  useEffect(() => setMembers(false), [c.id]);
  return html`<section class="main" aria-label=${`Conversation with ${s.title(c)}`}>
    <header class="bar">
      <button class="icon back" onClick=${() => go(null)} aria-label="Back to conversations">‹</button>
      <div class="head"><h2>${s.title(c)} ${other && html`<${Presence} user=${other} />`}</h2><span class="muted sub">${sub}</span></div>
      <button class="link" onClick=${() => setMembers(!members)} aria-expanded=${members} aria-label="Members">${c.type === 'group' ? 'Members' : 'Info'}</button>
    </header>
    <div class="content">
      <div class="column">
        <${Thread} convId=${c.id} />
        <${Typing} convId=${c.id} />
        <${Composer} convId=${c.id} />
      </div>
      ${members && html`<${Members} c=${c} onClose=${() => setMembers(false)} />`}
    </div>
  </section>`;
}

function NewConversation({ onClose }) {
  const s = use();
  const [type, setType] = useState('direct');
  const [err, setErr] = useState('');
  const dlg = useRef(null);
  useEffect(() => dlg.current?.showModal(), []);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const names = String(f.get('usernames')).split(/[\s,]+/).filter(Boolean);
      const id = type === 'direct' ? await s.createDirect(names[0]) : await s.createGroup(String(f.get('title')), names);
      onClose();
      go(id);
    } catch (e2) {
      setErr(e2.message);
    }
  };
  return html`<dialog ref=${dlg} class="card dialog" onClose=${onClose} aria-label="New conversation">
    <form onSubmit=${submit}>
      <h2>New conversation</h2>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected=${type === 'direct'} onClick=${() => setType('direct')}>Direct message</button>
        <button type="button" role="tab" aria-selected=${type === 'group'} onClick=${() => setType('group')}>Group</button>
      </div>
      ${type === 'group' && html`<label>Title<input name="title" required /></label>`}
      <label>${type === 'group' ? 'Members (usernames)' : 'Username'}<input name="usernames" required autocapitalize="none" /></label>
      ${err && html`<p class="error" role="alert">${err}</p>`}
      <div class="row end"><button type="button" class="link" onClick=${onClose}>Cancel</button><button class="primary">Start</button></div>
    </form>
  </dialog>`;
}

function App() {
  const s = use();
  const [creating, setCreating] = useState(false);
  const c = s.current && s.convs.get(s.current);
  const total = s.totalUnread();
  document.title = total ? `(${total}) parley` : 'parley';
  useEffect(() => {
    const onKey = (e) => {
      if (e.key === 'Escape' && !document.querySelector('dialog[open]')) go(null);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  return html`<div class=${'layout' + (c ? ' has-conv' : '')}>
    <${Sidebar} onNew=${() => setCreating(true)} />
    ${c ? html`<${Conversation} c=${c} />` : html`<section class="main empty-main"><p class="muted">Pick a conversation, or start one with +.</p></section>`}
    ${creating && html`<${NewConversation} onClose=${() => setCreating(false)} />`}
  </div>`;
}

let cleared = false;
function draw() {
  const root = document.getElementById('app');
  if (!cleared) {
    root.textContent = ''; // the boot message
    cleared = true;
  }
  render(store ? h(App) : h(Auth), root);
}

async function startApp() {
  store = createStore(api);
  window.parleyStore = store; // for tests and the console
  try {
    await store.start();
  } catch (e) {
    if (!api.signedIn) return signedOut();
    throw e;
  }
  draw();
  store.open(route());
}

// Coming back to the page re-renders it, so what is on screen now counts
// as seen; "last seen … ago" is redrawn now and then.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && store) store.version.value++;
});
setInterval(() => store && store.version.value++, 30_000);

// Leaving the page ends the session at once, so others see this device go
// offline now rather than when its connection times out; a page restored
// from the back-forward cache starts again.
window.addEventListener('pagehide', () => store?.stop());
window.addEventListener('pageshow', (e) => e.persisted && location.reload());

if (api.signedIn) {
  startApp().catch((e) => {
    console.error(e);
    if (!api.signedIn) signedOut();
  });
} else {
  draw();
}
