// The client against a REAL gateway: MINIGATE_URL names one (its stand-in
// platform accepts any code; its access tokens live about a second, with
// no leeway). gateway/tests/it/examples.rs starts it and runs this file;
// without MINIGATE_URL every test here is skipped.
//
// The platform shim's request() does real HTTP with node's fetch, so what
// the client sends and reads is what a mini-program would.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./minigate.js');

const base = process.env.MINIGATE_URL;
const skip = !base && 'MINIGATE_URL is not set';

// A wx-shaped platform whose request() is node's fetch; every call and its
// status is recorded.
// `who` makes its login codes its own (a code sent twice is a retry of one login).
function fetchPlatform(who = 'node-client') {
  const storage = new Map();
  const calls = [];
  let codes = 0;
  return {
    calls,
    storage,
    login: ({ success }) => success({ code: `${who}-${process.pid}-${++codes}` }),
    request({ url, method = 'GET', data, header = {}, success, fail }) {
      const body = data === undefined ? undefined : JSON.stringify(data);
      fetch(url, { method, headers: header, body })
        .then(async (res) => {
          const text = await res.text();
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: kept as text, as wx.request does
          }
          calls.push({ call: `${method} ${new URL(url).pathname}`, status: res.status });
          success({ statusCode: res.status, data: parsed, header: Object.fromEntries(res.headers) });
        })
        .catch(fail);
    },
    getStorageSync: (k) => (storage.has(k) ? structuredClone(storage.get(k)) : ''),
    setStorageSync: (k, v) => storage.set(k, structuredClone(v)),
    removeStorageSync: (k) => storage.delete(k),
  };
}

const api = fetchPlatform();
const client = createClient({ baseUrl: base || 'http://unused', api });
const count = (call) => api.calls.filter((c) => c.call === call).length;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Until the stored access token is past its exp (whole seconds, no leeway).
async function untilExpired() {
  await sleep(Math.max(0, client.tokens().expires_at - Date.now()) + 1100);
}

test('the first request logs in and reaches the protected route', { skip }, async () => {
  const res = await client.request({ url: '/api/node/one' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.seen, true);
  assert.equal(count('POST /auth/login'), 1);
  const tokens = client.tokens();
  assert.ok(tokens.openid.startsWith('openid-'));
  assert.equal(tokens.access_token.split('.').length, 3);
});

test('an expired access token is answered 401, refreshed once and retried', { skip }, async () => {
  const before = client.tokens();
  await untilExpired();
  const res = await client.request({ url: '/api/node/after-expiry' });
  assert.equal(res.statusCode, 200);
  const tries = api.calls.filter((c) => c.call === 'GET /api/node/after-expiry').map((c) => c.status);
  assert.deepEqual(tries, [401, 200], 'the gateway refused the expired token');
  assert.equal(count('POST /auth/refresh'), 1);
  assert.equal(count('POST /auth/login'), 1, 'no new login');
  assert.notEqual(client.tokens().access_token, before.access_token);
  assert.notEqual(client.tokens().refresh_token, before.refresh_token);
});

test('requests in flight when the token expires share one refresh', { skip }, async () => {
  await untilExpired();
  const paths = [1, 2, 3, 4, 5, 6].map((i) => `/api/node/parallel/${i}`);
  const all = await Promise.all(paths.map((url) => client.request({ url })));
  assert.deepEqual(
    all.map((r) => r.statusCode),
    paths.map(() => 200)
  );
  assert.equal(count('POST /auth/refresh'), 2, 'one more refresh, shared by all six');
  assert.equal(count('POST /auth/login'), 1);
});

test('logout ends the session at the gateway', { skip }, async () => {
  const { refresh_token } = client.tokens();
  await client.logout();
  assert.equal(client.tokens(), null);
  const out = api.calls.find((c) => c.call === 'POST /auth/logout');
  assert.equal(out.status, 204);
  const res = await fetch(`${base}/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token }),
  });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'invalid_grant');
});

test('a phone number comes back verified, and the refresh right after carries it', { skip }, async () => {
  await client.login();
  const refreshes = count('POST /auth/refresh');
  const phone = await client.getPhoneNumber('phone:13800002222');
  assert.equal(phone.phone_number, '+86 13800002222');
  assert.equal(count('POST /auth/refresh'), refreshes + 1, 'one refresh right after the phone call');
  const payload = JSON.parse(Buffer.from(client.tokens().access_token.split('.')[1], 'base64url'));
  assert.equal(payload.phone_number, '+86 13800002222');
});

test('decrypt of data the session key does not decrypt is 409 session_key_expired', { skip }, async () => {
  await assert.rejects(client.decrypt({ encryptedData: Buffer.alloc(32).toString('base64'), iv: Buffer.alloc(16).toString('base64') }), (err) => {
    assert.equal(err.response.statusCode, 409);
    assert.equal(err.response.data.error, 'session_key_expired');
    return true;
  });
});

test('the session_key of a fresh login is one WeChat still holds', { skip }, async () => {
  await client.login();
  assert.equal(await client.checkSessionKey(), true);
});

test('a session ended elsewhere is told to onSessionEnded, with no silent login', { skip }, async () => {
  const other = fetchPlatform('node-ended');
  const told = [];
  const ended = createClient({
    baseUrl: base || 'http://unused',
    api: other,
    deviceName: 'node test',
    onSessionEnded: (reason) => told.push(reason),
  });
  const list = await ended.request({ url: '/auth/sessions' });
  assert.equal(list.statusCode, 200);
  const [mine] = list.data.sessions;
  assert.equal(mine.device_name, 'node test');
  assert.equal(mine.platform, 'wechat');
  // The user signs out everywhere on another device.
  const res = await fetch(`${base}/auth/logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: ended.tokens().refresh_token, everywhere: true }),
  });
  assert.equal(res.status, 204);
  await assert.rejects(ended.request({ url: '/api/ended/after' }), (err) => err.reason === 'logged_out');
  assert.deepEqual(told, ['logged_out']);
  const calls = other.calls.map((c) => `${c.call} ${c.status}`);
  assert.deepEqual(calls.slice(-2), ['GET /api/ended/after 401', 'POST /auth/refresh 400']);
  assert.equal(other.calls.filter((c) => c.call === 'POST /auth/login').length, 1, 'no silent login');
  assert.equal(ended.tokens(), null);
});
