// minigate client for WeChat mini-programs: copy this file into your
// mini-program and call every API through `client.request`.
//
//   const { createClient } = require('./minigate.js');
//   const client = createClient({ baseUrl: 'https://api.example.com', appid: 'wx0123456789abcdef' });
//   const res = await client.request({ url: '/api/orders', method: 'GET' });
//
// What it does:
// - logs in with wx.login() -> POST /auth/login when it has no tokens;
// - keeps the tokens with wx.setStorageSync, so they survive restarts;
// - sends `Authorization: Bearer <access token>` on every request;
// - on a 401, runs ONE refresh (POST /auth/refresh) shared by every request
//   in flight, then retries each of them once with the new token;
// - when the refresh is refused (expired, revoked, reused: 400
//   invalid_grant), logs in afresh and retries;
// - opens WebSockets (client.connectSocket, wx.connectSocket underneath) with
//   the same Authorization header, renewing first if the access token is
//   about to expire.
// Refresh tokens are single-use on the gateway: two refreshes of one token
// would revoke the session, which is why refreshing is shared, never
// concurrent.

'use strict';

const DEFAULT_STORAGE_KEY = 'minigate.tokens';
// A socket's token is checked once, at the handshake: renew before opening
// one if the access token has less than this left.
const SOCKET_MARGIN_MS = 30 * 1000;

function createClient(options) {
  const wx = options.wx || globalThis.wx;
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const appid = options.appid;
  const storageKey = options.storageKey || DEFAULT_STORAGE_KEY;
  let renewing = null; // the one login or refresh in flight, shared

  function raw(opts) {
    return new Promise((resolve, reject) => {
      wx.request({
        ...opts,
        url: opts.url.startsWith('http') ? opts.url : baseUrl + opts.url,
        success: resolve,
        fail: reject,
      });
    });
  }

  function wxLogin() {
    return new Promise((resolve, reject) => {
      wx.login({
        success: (res) => (res.code ? resolve(res.code) : reject(new Error('wx.login gave no code'))),
        fail: reject,
      });
    });
  }

  function load() {
    const stored = wx.getStorageSync(storageKey);
    return stored && stored.access_token ? stored : null;
  }

  function save(tokens) {
    wx.setStorageSync(storageKey, {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      openid: tokens.openid,
      expires_at: tokens.expires_in ? Date.now() + tokens.expires_in * 1000 : undefined,
    });
    return load();
  }

  async function login() {
    const code = await wxLogin();
    const data = appid ? { code, appid } : { code };
    const res = await raw({ url: '/auth/login', method: 'POST', data, header: { 'content-type': 'application/json' } });
    if (res.statusCode !== 200) {
      const err = new Error(`login failed: ${res.statusCode} ${res.data && res.data.error}`);
      err.response = res;
      throw err;
    }
    return save(res.data);
  }

  async function refreshOrLogin() {
    const tokens = load();
    if (tokens && tokens.refresh_token) {
      const res = await raw({
        url: '/auth/refresh',
        method: 'POST',
        data: { refresh_token: tokens.refresh_token },
        header: { 'content-type': 'application/json' },
      });
      if (res.statusCode === 200) return save(res.data);
      if (res.statusCode !== 400) {
        // 503 and the like: the session may still be fine; let the caller retry later.
        const err = new Error(`refresh failed: ${res.statusCode}`);
        err.response = res;
        throw err;
      }
    }
    return login();
  }

  // One renewal at a time, shared by every caller that needs it.
  function renew() {
    if (!renewing) {
      renewing = refreshOrLogin().finally(() => {
        renewing = null;
      });
    }
    return renewing;
  }

  function withToken(opts, tokens) {
    return { ...opts, header: { ...(opts.header || {}), Authorization: `Bearer ${tokens.access_token}` } };
  }

  async function request(opts) {
    let tokens = load() || (await renew());
    let res = await raw(withToken(opts, tokens));
    if (res.statusCode !== 401) return res;
    // Another request may already have renewed the token this one used.
    const now = load();
    tokens = now && now.access_token !== tokens.access_token ? now : await renew();
    return raw(withToken(opts, tokens));
  }

  // wx.connectSocket sends headers, so the gateway authenticates the
  // handshake like any request. A refused handshake does not tell the
  // mini-program its status code, so rather than retry on 401 the token is
  // renewed first when it is close to expiring. Returns wx's SocketTask.
  async function connectSocket(opts) {
    let tokens = load();
    if (!tokens || (tokens.expires_at && tokens.expires_at - Date.now() < SOCKET_MARGIN_MS)) {
      tokens = await renew();
    }
    const url = /^wss?:/.test(opts.url) ? opts.url : baseUrl.replace(/^http/, 'ws') + opts.url;
    return wx.connectSocket({ ...withToken(opts, tokens), url });
  }

  async function logout() {
    const tokens = load();
    wx.removeStorageSync(storageKey);
    if (tokens && tokens.refresh_token) {
      await raw({
        url: '/auth/logout',
        method: 'POST',
        data: { refresh_token: tokens.refresh_token },
        header: { 'content-type': 'application/json' },
      });
    }
  }

  return { request, connectSocket, login, logout, tokens: load };
}

module.exports = { createClient };
