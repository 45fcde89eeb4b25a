// minigate-client: the mini-program side of minigate, for every super-app
// minigate speaks to (WeChat, QQ, Douyin, Baidu, Alipay, Kuaishou, Feishu) and for Taro and
// uni-app. Call every API through `client.request`.
//
//   const { createClient } = require('minigate-client');   // or import
//   const client = createClient({ baseUrl: 'https://api.example.com', appid: 'wx0123456789abcdef', api: wx });
//   const res = await client.request({ url: '/api/orders', method: 'GET' });
//
// `api` is the platform's API object: `wx`, `qq`, `tt` (Douyin, and Feishu's
// mini-programs), `swan` (Baidu), `my` (Alipay), `ks` (Kuaishou), or Taro /
// uni (`Taro`, `uni`). Left out, the first of those found as a global is used.
//
// What it does:
// - logs in when it has no tokens: a login code from the platform (`login()`,
//   or Alipay's `my.getAuthCode()`, whose `authCode` is the code; Douyin's
//   `anonymousCode` goes along) -> POST /auth/login;
// - keeps the tokens in the platform's storage, so they survive restarts;
// - sends `Authorization: Bearer <access token>` on every request;
// - on a 401, runs ONE refresh (POST /auth/refresh) shared by every request
//   in flight, then retries each of them once with the new token;
// - when the refresh is refused (expired, revoked, reused: 400
//   invalid_grant), logs in afresh and retries; but when the gateway says
//   the session was ended for a reason the user should hear of (`reason`
//   `replaced`, `logged_out`, `revoked`, `reused`, `banned`) and the app
//   gave `onSessionEnded`, that hook is called with the reason instead,
//   the tokens are forgotten and the request fails with `err.reason`: the
//   app tells the user ("you signed in on another device") and the next
//   request (or `client.login()`) logs in again. An expiry (no reason, or
//   `idle`) always logs in again silently;
// - opens WebSockets (client.connectSocket) with the same Authorization
//   header, renewing first if the access token is about to expire.
// Refresh tokens are single-use on the gateway: two refreshes of one token
// would revoke the session, which is why refreshing is shared, never
// concurrent.

'use strict';

const DEFAULT_STORAGE_KEY = 'minigate.tokens';
// Reasons a session ended that are an expiry: a new login follows silently.
// Any other reason goes to onSessionEnded, when the app gave one.
const EXPIRY = new Set(['idle']);
// A socket's token is checked once, at the handshake: renew before opening
// one if the access token has less than this left.
const SOCKET_MARGIN_MS = 30 * 1000;
// The platforms' API objects, in the order they are looked for as globals.
const GLOBALS = ['wx', 'qq', 'tt', 'swan', 'my', 'ks', 'Taro', 'uni'];

function findApi() {
  for (const name of GLOBALS) {
    if (typeof globalThis[name] === 'object' && globalThis[name]) return globalThis[name];
  }
  throw new Error('minigate: pass the platform API object as `api` (wx, qq, tt, swan, my, ks, Taro or uni)');
}

// Alipay's own `my` differs: a login code comes from getAuthCode as
// `authCode`, requests take `headers` and answer `status`/`headers` (and
// call `fail` for an HTTP error status), and storage takes `{ key, data }`.
// Taro and uni-app smooth this over, so they are used like `wx` everywhere.
function isAlipay(api, platform) {
  if (platform) return platform === 'alipay';
  return typeof api.getAuthCode === 'function' && typeof api.login !== 'function';
}

function adapt(api, alipay) {
  const call = (fn, opts) =>
    new Promise((resolve, reject) => {
      api[fn]({ ...opts, success: resolve, fail: reject });
    });
  // A failure that carries an HTTP status is an answer, not a network error.
  const answer = (res) => ({
    statusCode: res.statusCode !== undefined ? res.statusCode : res.status,
    data: res.data,
    header: res.header || res.headers || {},
  });
  return {
    async code() {
      if (alipay) {
        const res = await call('getAuthCode', { scopes: 'auth_base' });
        return { code: res.authCode || res.code };
      }
      const res = await call('login', {});
      return { code: res.code, anonymousCode: res.anonymousCode };
    },
    request(opts) {
      const { header, ...rest } = opts;
      const req = alipay ? { ...rest, headers: header } : opts;
      if (alipay && req.data !== undefined && typeof req.data !== 'string') {
        req.data = JSON.stringify(req.data);
      }
      return call('request', req).then(answer, (err) => {
        if (err && (typeof err.status === 'number' || typeof err.statusCode === 'number')) return answer(err);
        throw err;
      });
    },
    load(key) {
      return alipay ? (api.getStorageSync({ key }) || {}).data : api.getStorageSync(key);
    },
    save(key, value) {
      if (alipay) api.setStorageSync({ key, data: value });
      else api.setStorageSync(key, value);
    },
    remove(key) {
      if (alipay) api.removeStorageSync({ key });
      else api.removeStorageSync(key);
    },
    connectSocket(opts) {
      return api.connectSocket(opts);
    },
  };
}

function createClient(options) {
  const api = options.api || options.wx || findApi();
  const platform = adapt(api, isAlipay(api, options.platform));
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const appid = options.appid;
  const storageKey = options.storageKey || DEFAULT_STORAGE_KEY;
  const onSessionEnded = options.onSessionEnded;
  // What the gateway keeps of a device name: 1-64 printable ASCII
  // characters; anything else is dropped here rather than failing the login.
  const deviceName = options.deviceName
    ? String(options.deviceName).replace(/[^\x20-\x7e]/g, '').trim().slice(0, 64).trim()
    : '';
  const JSON_HEADER = { 'content-type': 'application/json' };
  let renewing = null; // the one login or refresh in flight, shared

  function raw(opts) {
    return platform.request({
      ...opts,
      url: /^https?:/.test(opts.url) ? opts.url : baseUrl + opts.url,
    });
  }

  function load() {
    const stored = platform.load(storageKey);
    return stored && stored.access_token ? stored : null;
  }

  function save(tokens) {
    platform.save(storageKey, {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      openid: tokens.openid,
      expires_at: tokens.expires_in ? Date.now() + tokens.expires_in * 1000 : undefined,
    });
    return load();
  }

  async function login() {
    const { code, anonymousCode } = await platform.code();
    if (!code) throw new Error('minigate: the platform gave no login code');
    const data = { code };
    if (appid) data.appid = appid;
    if (anonymousCode) data.anonymous_code = anonymousCode;
    if (deviceName) data.device_name = deviceName;
    const res = await raw({ url: '/auth/login', method: 'POST', data, header: JSON_HEADER });
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
        header: JSON_HEADER,
      });
      if (res.statusCode === 200) return save(res.data);
      const reason = res.data && res.data.reason;
      if (res.statusCode === 400 && reason && !EXPIRY.has(reason) && onSessionEnded) {
        // Ended for a reason the user should hear of: no silent login.
        platform.remove(storageKey);
        const err = new Error(`minigate: the session ended (${reason})`);
        err.reason = reason;
        err.response = res;
        onSessionEnded(reason);
        throw err;
      }
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

  // connectSocket sends headers, so the gateway authenticates the handshake
  // like any request. A refused handshake does not tell the mini-program its
  // status code, so rather than retry on 401 the token is renewed first when
  // it is close to expiring. Returns the platform's SocketTask.
  async function connectSocket(opts) {
    let tokens = load();
    if (!tokens || (tokens.expires_at && tokens.expires_at - Date.now() < SOCKET_MARGIN_MS)) {
      tokens = await renew();
    }
    const url = /^wss?:/.test(opts.url) ? opts.url : baseUrl.replace(/^http/, 'ws') + opts.url;
    return platform.connectSocket({ ...withToken(opts, tokens), url });
  }

  async function logout() {
    const tokens = load();
    platform.remove(storageKey);
    if (tokens && tokens.refresh_token) {
      await raw({
        url: '/auth/logout',
        method: 'POST',
        data: { refresh_token: tokens.refresh_token },
        header: JSON_HEADER,
      });
    }
  }

  // WeChat's phone number: pass the code of the getPhoneNumber button's
  // event (e.detail.code). The gateway verifies it with WeChat and keeps it
  // with the session; it mints no token, the session's next refresh carries
  // the number. So a refresh follows right away (after any renewal already
  // in flight, which may have been checked before the number was kept), and
  // its pair is stored.
  async function getPhoneNumber(code) {
    if (!code) throw new Error('minigate: getPhoneNumber needs the button event\'s code');
    const res = await request({ url: '/auth/phone', method: 'POST', data: { code }, header: JSON_HEADER });
    if (res.statusCode !== 200) {
      const err = new Error(`phone number failed: ${res.statusCode} ${res.data && res.data.error}`);
      err.response = res;
      throw err;
    }
    const { phone_number, pure_phone_number, country_code } = res.data;
    if (renewing) await renewing.catch(() => {});
    await renew();
    return { phone_number, pure_phone_number, country_code };
  }

  // WeChat's legacy encryptedData (e.g. from wx.getWeRunData): decrypted by
  // the gateway with this session's session_key, which never reaches the
  // mini-program. A 409 session_key_expired means the user logged in again
  // since: log in once more and fetch the data again. When the gateway
  // could ask WeChat, err.response.data.session_key says which: 'invalid'
  // (log in again) or 'valid' (only fetch the data again).
  async function decrypt({ encryptedData, iv }) {
    const res = await request({
      url: '/auth/wechat/decrypt',
      method: 'POST',
      data: { encrypted_data: encryptedData, iv },
      header: JSON_HEADER,
    });
    if (res.statusCode !== 200) {
      const err = new Error(`decrypt failed: ${res.statusCode} ${res.data && res.data.error}`);
      err.response = res;
      throw err;
    }
    return res.data;
  }

  // Whether WeChat still holds this session's session_key (its
  // checksession, asked by the gateway): ask before asking the user for
  // encrypted data; false means log in again (client.login()) first.
  async function checkSessionKey() {
    const res = await request({ url: '/auth/wechat/session_key', method: 'GET' });
    if (res.statusCode !== 200) {
      const err = new Error(`session_key check failed: ${res.statusCode} ${res.data && res.data.error}`);
      err.response = res;
      throw err;
    }
    return res.data.valid === true;
  }

  return { request, connectSocket, login, logout, getPhoneNumber, decrypt, checkSessionKey, tokens: load };
}

module.exports = { createClient };
