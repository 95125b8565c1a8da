// rest.js: the web app's calls to the edge's /v1 API, and its tokens.
//
// Tokens. The edge sets no cookies and allows no credentials mode
// (docs/security.md): tokens travel in Authorization. So the access token
// (15 minutes) lives in memory only, and the refresh token (30 days,
// rotating on every use) is kept in localStorage with the user and device
// ids, so a reload stays logged in. A refresh runs under a Web Lock shared
// by the origin's tabs and always presents the newest stored token, so two
// tabs never present the same token twice (which the edge takes as theft
// and answers by revoking the device). Logging out revokes this device
// (DELETE /v1/devices/{id}): its tokens and live sessions end on every
// edge, and the stored token is forgotten.

const KEY = 'parley.session';
const LOCK = 'parley.refresh';

// ApiError is a /v1 error: {code, numeric_code, message, retry_after_ms}.
export class ApiError extends Error {
  constructor(status, e = {}) {
    super(e.message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.codeName = e.code || 'internal';
    this.code = e.numeric_code || 11;
    this.retryAfterMs = e.retry_after_ms || 0;
  }
}

// Api is one signed-in device (or none yet). onSignedOut is called when
// the session is gone for good (revoked, refresh refused, logged out).
export class Api {
  #access = '';
  #accessExp = 0;
  #lead = 30_000; // refresh this long before the access token expires
  #refreshing = null;

  constructor({ base = '', storage = globalThis.localStorage, onSignedOut = () => {} } = {}) {
    this.base = base;
    this.storage = storage;
    this.onSignedOut = onSignedOut;
    this.saved = this.#load();
  }

  #load() {
    try {
      return JSON.parse(this.storage.getItem(KEY) || 'null');
    } catch {
      return null;
    }
  }

  #save(v) {
    this.saved = v;
    if (v) this.storage.setItem(KEY, JSON.stringify(v));
    else this.storage.removeItem(KEY);
  }

  get signedIn() {
    return !!this.saved?.refreshToken;
  }

  async #fetch(method, path, body, auth = true) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) headers.Authorization = `Bearer ${await this.token()}`;
    const r = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const text = await r.text();
    let json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      // not the edge's JSON (a proxy's error page): the status says it
    }
    if (!r.ok) {
      const e = new ApiError(r.status, json.error);
      if (auth && (e.codeName === 'revoked' || e.codeName === 'refresh_token_reused')) this.#signedOut();
      throw e;
    }
    return json;
  }

  // call is an authenticated call; an expired token is refreshed once.
  async call(method, path, body) {
    try {
      return await this.#fetch(method, path, body);
    } catch (e) {
      if (e.codeName !== 'token_expired') throw e;
      this.#accessExp = 0;
      return this.#fetch(method, path, body);
    }
  }

  #signedOut() {
    this.#access = '';
    this.#save(null);
    this.onSignedOut();
  }

  #took(s, workspace) {
    this.#access = s.access_token;
    this.#accessExp = Date.now() + s.expires_in * 1000;
    this.#lead = Math.min(30_000, (s.expires_in * 1000) / 3);
    this.#save({
      workspace: workspace ?? this.saved?.workspace, refreshToken: s.refresh_token,
      user: s.user ?? this.saved?.user, deviceId: s.device?.id ?? this.saved?.deviceId,
    });
  }

  // register signs up (creating the workspace when it does not exist),
  // then logs in.
  async register({ workspace, username, password, displayName = '' }) {
    await this.#fetch('POST', '/v1/accounts', { workspace, username, password, display_name: displayName }, false);
    return this.login({ workspace, username, password });
  }

  async login({ workspace, username, password }) {
    const s = await this.#fetch('POST', '/v1/sessions', {
      workspace, username, password, device_name: browserName(), platform: 'web',
    }, false);
    this.#took(s, workspace);
    return s;
  }

  // token is a live access token, refreshed when it is near its end.
  async token() {
    if (this.#access && Date.now() < this.#accessExp - this.#lead) return this.#access;
    return this.refresh();
  }

  // refresh trades the stored refresh token for a new pair (one at a
  // time across tabs) and resolves with the access token.
  refresh() {
    if (!this.#refreshing) {
      const run = async () => {
        const saved = this.#load(); // another tab may have rotated it
        if (!saved?.refreshToken) {
          this.#signedOut();
          throw new ApiError(401, { code: 'unauthenticated', message: 'signed out' });
        }
        let s;
        try {
          s = await this.#fetch('POST', '/v1/sessions/refresh', { refresh_token: saved.refreshToken }, false);
        } catch (e) {
          if (e.status === 401) this.#signedOut();
          throw e;
        }
        this.saved = saved;
        this.#took(s);
        return this.#access;
      };
      const locked = globalThis.navigator?.locks ? navigator.locks.request(LOCK, run) : run();
      this.#refreshing = locked.finally(() => (this.#refreshing = null));
    }
    return this.#refreshing;
  }

  // logout revokes this device: its tokens and sessions end everywhere.
  async logout() {
    const id = this.saved?.deviceId;
    try {
      if (id) await this.call('DELETE', `/v1/devices/${encodeURIComponent(id)}`);
    } finally {
      this.#signedOut();
    }
  }

  me() {
    return this.call('GET', '/v1/me');
  }

  conversations() {
    return this.call('GET', '/v1/conversations');
  }

  conversation(id) {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(id)}`);
  }

  createConversation({ type, title = '', usernames = [], userIds = [] }) {
    return this.call('POST', '/v1/conversations', { type, title, member_usernames: usernames, member_ids: userIds });
  }

  addMembers(convId, { usernames = [], userIds = [] }) {
    return this.call('POST', `/v1/conversations/${encodeURIComponent(convId)}/members`, { usernames, user_ids: userIds });
  }

  // removeMember removes a member; with the caller's own id, leaves.
  removeMember(convId, userId) {
    return this.call('DELETE', `/v1/conversations/${encodeURIComponent(convId)}/members/${encodeURIComponent(userId)}`);
  }

  receipts(convId) {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(convId)}/receipts`);
  }

  // search is one page of GET /v1/search: {q, convId, sort, cursor, limit}.
  search({ q, convId = '', sort = '', cursor = '', limit = 0 }) {
    const p = new URLSearchParams({ q });
    if (convId) p.set('conv_id', convId);
    if (sort) p.set('sort', sort);
    if (cursor) p.set('cursor', cursor);
    if (limit) p.set('limit', String(limit));
    return this.call('GET', `/v1/search?${p}`);
  }

  // vapidKey is the server's Web Push key (text), or '' when push is off.
  async vapidKey() {
    const r = await fetch(`${this.base}/.well-known/parley/vapid-public-key`, { cache: 'no-store' });
    return r.ok ? (await r.text()).trim() : '';
  }

  // setPush registers this device's Web Push subscription (its toJSON()).
  setPush(sub) {
    const { endpoint, keys } = sub;
    return this.call('PUT', `/v1/devices/${encodeURIComponent(this.saved.deviceId)}/push`, { web_push: { endpoint, keys } });
  }

  removePush() {
    return this.call('DELETE', `/v1/devices/${encodeURIComponent(this.saved.deviceId)}/push`);
  }

  // users names users of the workspace by id.
  users(ids) {
    return this.call('GET', `/v1/users?ids=${ids.map(encodeURIComponent).join(',')}`);
  }
}

function browserName() {
  const ua = globalThis.navigator?.userAgent ?? '';
  const b = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return `${b} (web)`;
}
