// Tests of minigate.js under node's test runner (`node --test`), with a
// stubbed platform API (`wx`, and below every other shape: qq, tt, swan,
// Alipay's my, Kuaishou's ks, Feishu's tt, Taro, uni) whose request() is served by a small fake of the
// gateway's contract: single-use refresh tokens, 401 for stale access
// tokens. real-gateway.test.js drives the same client through a real one.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./minigate.js');

function fakeGateway() {
  const state = { n: 0, logins: 0, refreshes: 0, phone: undefined, validAccess: new Set(), validRefresh: new Set(), seen: [], loginBodies: [], ended: new Map() };
  // Ends the session of every token now valid, for `reason`: its tokens are
  // then answered with that reason beside the error, as the gateway does.
  state.end = (reason) => {
    for (const t of [...state.validAccess, ...state.validRefresh]) state.ended.set(t, reason);
    state.validAccess.clear();
    state.validRefresh.clear();
  };
  const refused = (status, error, token) => {
    const data = { error, error_description: 'session revoked' };
    if (state.ended.has(token)) data.reason = state.ended.get(token);
    return { statusCode: status, data };
  };
  const issue = () => {
    state.n += 1;
    const pair = { access_token: `at-${state.n}`, refresh_token: `rt-${state.n}`, openid: 'o-1', expires_in: 900 };
    // The session's phone number rides in the tokens issued after it was kept.
    if (state.phone) pair.phone_number = state.phone;
    state.validAccess.add(pair.access_token);
    state.validRefresh.add(pair.refresh_token);
    return pair;
  };
  const handle = ({ url, method, data, header }) => {
    const path = url.replace('https://gw.test', '');
    state.seen.push(`${method || 'GET'} ${path}`);
    if (path === '/auth/login') {
      state.logins += 1;
      state.loginBodies.push(data);
      return data.code ? { statusCode: 200, data: issue() } : { statusCode: 400, data: { error: 'invalid_request' } };
    }
    if (path === '/auth/refresh') {
      state.refreshes += 1;
      if (!state.validRefresh.delete(data.refresh_token)) {
        return refused(400, 'invalid_grant', data.refresh_token);
      }
      return { statusCode: 200, data: issue() };
    }
    if (path === '/auth/logout') {
      state.validRefresh.delete(data.refresh_token);
      return { statusCode: 204, data: '' };
    }
    const auth = (header && header.Authorization) || '';
    if (!state.validAccess.has(auth.replace(/^Bearer /, ''))) {
      return refused(401, 'invalid_token', auth.replace(/^Bearer /, ''));
    }
    if (path === '/auth/phone') {
      if (!data.code) return { statusCode: 400, data: { error: 'invalid_request' } };
      // Kept with the session; no token is minted, the refresh token stays.
      state.phone = '+86 13800001111';
      return {
        statusCode: 200,
        data: { phone_number: '+86 13800001111', pure_phone_number: '13800001111', country_code: '86' },
      };
    }
    if (path === '/auth/wechat/session_key') {
      return { statusCode: 200, data: { valid: state.keyValid !== false } };
    }
    if (path === '/auth/wechat/decrypt') {
      return data.encrypted_data === 'stale'
        ? { statusCode: 409, data: { error: 'session_key_expired' } }
        : { statusCode: 200, data: { openId: 'o-1', watermark: { appid: 'wx0123456789abcdef' } } };
    }
    return { statusCode: 200, data: { path, auth } };
  };
  return { state, handle };
}

function stubWx(gateway) {
  const storage = new Map();
  let codes = 0;
  return {
    storage,
    login: ({ success }) => setImmediate(() => success({ code: `code-${++codes}` })),
    request: (opts) => setTimeout(() => opts.success(gateway.handle(opts)), 5),
    getStorageSync: (k) => (storage.has(k) ? structuredClone(storage.get(k)) : ''),
    setStorageSync: (k, v) => storage.set(k, structuredClone(v)),
    removeStorageSync: (k) => storage.delete(k),
    sockets: [],
    connectSocket(opts) {
      const task = { opts, onMessage() {}, send() {}, close() {} };
      this.sockets.push(task);
      return task;
    },
  };
}

function setup() {
  const gateway = fakeGateway();
  const wx = stubWx(gateway);
  const client = createClient({ baseUrl: 'https://gw.test/', appid: 'wx0123456789abcdef', wx });
  return { gateway, wx, client };
}

test('first request logs in and sends the bearer token', async () => {
  const { gateway, client, wx } = setup();
  const res = await client.request({ url: '/api/orders' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.auth, 'Bearer at-1');
  assert.equal(gateway.state.logins, 1);
  assert.equal(wx.storage.get('minigate.tokens').refresh_token, 'rt-1');
});

test('a 401 triggers one shared refresh for all requests in flight', async () => {
  const { gateway, client } = setup();
  await client.request({ url: '/api/warm' });
  gateway.state.validAccess.clear(); // every access token expires at once
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => client.request({ url: `/api/${i}` })));
  assert.ok(results.every((r) => r.statusCode === 200));
  assert.equal(gateway.state.refreshes, 1, 'exactly one refresh');
  assert.equal(gateway.state.logins, 1, 'no new login');
  assert.ok(results.every((r) => r.data.auth === 'Bearer at-2'));
});

test('a refused refresh falls back to a fresh login, then retries', async () => {
  const { gateway, client } = setup();
  await client.request({ url: '/api/warm' });
  gateway.state.validAccess.clear();
  gateway.state.validRefresh.clear(); // the session was revoked
  const res = await client.request({ url: '/api/after' });
  assert.equal(res.statusCode, 200);
  assert.equal(gateway.state.refreshes, 1);
  assert.equal(gateway.state.logins, 2);
});

test('a session ended for a reason calls onSessionEnded once, instead of a silent login', async () => {
  const gateway = fakeGateway();
  const wx = stubWx(gateway);
  const told = [];
  const client = createClient({ baseUrl: 'https://gw.test', wx, onSessionEnded: (reason) => told.push(reason) });
  await client.request({ url: '/api/warm' });
  gateway.state.end('replaced'); // a newer login on another device took its place
  const results = await Promise.allSettled([1, 2, 3].map((i) => client.request({ url: `/api/${i}` })));
  assert.deepEqual(told, ['replaced'], 'told once, for every request in flight');
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.reason, 'replaced');
    assert.equal(r.reason.response.statusCode, 400);
  }
  assert.equal(gateway.state.refreshes, 1);
  assert.equal(gateway.state.logins, 1, 'no silent login');
  assert.equal(client.tokens(), null, 'the dead tokens are forgotten');
  // The app logs in again when it chooses: the next request does.
  const res = await client.request({ url: '/api/again' });
  assert.equal(res.statusCode, 200);
  assert.equal(gateway.state.logins, 2);
});

test('an expiry (idle, or no reason) logs in again silently, even with onSessionEnded', async () => {
  for (const reason of ['idle', undefined]) {
    const gateway = fakeGateway();
    const told = [];
    const client = createClient({ baseUrl: 'https://gw.test', wx: stubWx(gateway), onSessionEnded: (r) => told.push(r) });
    await client.request({ url: '/api/warm' });
    if (reason) gateway.state.end(reason);
    else {
      gateway.state.validAccess.clear();
      gateway.state.validRefresh.clear();
    }
    const res = await client.request({ url: '/api/after' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(told, []);
    assert.equal(gateway.state.logins, 2);
  }
  // Without the hook, any reason logs in again silently, as before.
  const gateway = fakeGateway();
  const client = createClient({ baseUrl: 'https://gw.test', wx: stubWx(gateway) });
  await client.request({ url: '/api/warm' });
  gateway.state.end('logged_out');
  assert.equal((await client.request({ url: '/api/after' })).statusCode, 200);
  assert.equal(gateway.state.logins, 2);
});

test('deviceName goes with the login as device_name', async () => {
  const gateway = fakeGateway();
  const client = createClient({ baseUrl: 'https://gw.test', wx: stubWx(gateway), deviceName: 'iPhone 15' });
  await client.login();
  assert.equal(gateway.state.loginBodies[0].device_name, 'iPhone 15');
  // What the gateway would refuse is dropped rather than failing the login.
  for (const [given, sent] of [['小米 14 Pro', '14 Pro'], ['x'.repeat(80), 'x'.repeat(64)], ['手机', undefined]]) {
    const g = fakeGateway();
    await createClient({ baseUrl: 'https://gw.test', wx: stubWx(g), deviceName: given }).login();
    assert.equal(g.state.loginBodies[0].device_name, sent);
  }
});

test('tokens survive a new client (a restarted mini-program)', async () => {
  const { gateway, client, wx } = setup();
  await client.request({ url: '/api/one' });
  const again = createClient({ baseUrl: 'https://gw.test', appid: 'wx0123456789abcdef', wx });
  const res = await again.request({ url: '/api/two' });
  assert.equal(res.statusCode, 200);
  assert.equal(gateway.state.logins, 1);
});

test('logout forgets the tokens and revokes the session', async () => {
  const { gateway, client, wx } = setup();
  await client.request({ url: '/api/one' });
  await client.logout();
  assert.equal(wx.storage.has('minigate.tokens'), false);
  assert.equal(gateway.state.validRefresh.has('rt-1'), false);
  assert.ok(gateway.state.seen.includes('POST /auth/logout'));
});

test('a socket opens with the bearer token on the wss URL', async () => {
  const { gateway, client, wx } = setup();
  const task = await client.connectSocket({ url: '/api/chat' });
  assert.equal(task, wx.sockets[0]);
  assert.equal(task.opts.url, 'wss://gw.test/api/chat');
  assert.equal(task.opts.header.Authorization, 'Bearer at-1');
  assert.equal(gateway.state.logins, 1);
});

test('a socket renews an access token about to expire before the handshake', async () => {
  const { gateway, client, wx } = setup();
  await client.request({ url: '/api/warm' });
  const stored = wx.storage.get('minigate.tokens');
  assert.ok(stored.expires_at > Date.now() + 800 * 1000, 'expiry kept from expires_in');
  wx.storage.set('minigate.tokens', { ...stored, expires_at: Date.now() + 5000 });
  const task = await client.connectSocket({ url: '/api/chat', header: { 'X-Room': '7' } });
  assert.equal(gateway.state.refreshes, 1);
  assert.equal(task.opts.header.Authorization, 'Bearer at-2');
  assert.equal(task.opts.header['X-Room'], '7');
});

// The other platforms' API objects, each with its own calling conventions.
function stubPlatform(gateway, shape) {
  const storage = new Map();
  let codes = 0;
  const later = (fn) => setTimeout(fn, 5);
  const wxLike = {
    storage,
    login: ({ success }) => setImmediate(() => success({ code: `${shape}-code-${++codes}` })),
    request: (opts) => later(() => opts.success(gateway.handle(opts))),
    getStorageSync: (k) => (storage.has(k) ? structuredClone(storage.get(k)) : ''),
    setStorageSync: (k, v) => storage.set(k, structuredClone(v)),
    removeStorageSync: (k) => storage.delete(k),
  };
  switch (shape) {
    case 'tt':
      // Douyin: an anonymousCode with every login.
      return {
        ...wxLike,
        login: ({ success }) => setImmediate(() => success({ code: `tt-code-${++codes}`, anonymousCode: `tt-anon-${codes}`, isLogin: true })),
      };
    case 'my':
      // Alipay: getAuthCode's authCode, `headers` and `status`, fail() on an
      // HTTP error status, and storage taking { key, data }.
      return {
        storage,
        scopes: [],
        getAuthCode(opts) {
          this.scopes.push(opts.scopes);
          setImmediate(() => opts.success({ authCode: `my-code-${++codes}` }));
        },
        request: (opts) =>
          later(() => {
            assert.equal(opts.header, undefined, 'Alipay takes headers, not header');
            const data = typeof opts.data === 'string' ? JSON.parse(opts.data) : opts.data;
            const res = gateway.handle({ ...opts, data, header: opts.headers });
            const answer = { status: res.statusCode, data: res.data, headers: {} };
            if (res.statusCode >= 400) opts.fail({ error: 19, errorMessage: 'http status error', ...answer });
            else opts.success(answer);
          }),
        getStorageSync: ({ key }) => ({ data: storage.has(key) ? structuredClone(storage.get(key)) : null }),
        setStorageSync: ({ key, data }) => storage.set(key, structuredClone(data)),
        removeStorageSync: ({ key }) => storage.delete(key),
      };
    case 'feishu':
      // Feishu's tt: wx's conventions, a login answering only `code` (no
      // anonymousCode: that is Douyin's).
      return {
        ...wxLike,
        login: ({ success }) => setImmediate(() => success({ code: `feishu-code-${++codes}`, errMsg: 'login:ok' })),
      };
    case 'Taro':
      // Taro: every call also returns a promise.
      return {
        ...wxLike,
        login: (opts) => {
          const p = Promise.resolve({ code: `taro-code-${++codes}`, errMsg: 'login:ok' });
          p.then(opts.success);
          return p;
        },
        request: (opts) => {
          const p = new Promise((resolve) => later(() => resolve(gateway.handle(opts))));
          p.then(opts.success);
          return p;
        },
      };
    default:
      // wx, qq, swan, ks (Kuaishou), uni: wx's conventions.
      return wxLike;
  }
}

for (const shape of ['qq', 'tt', 'swan', 'my', 'ks', 'feishu', 'Taro', 'uni']) {
  test(`${shape}: login, bearer token, one shared refresh on 401, logout`, async () => {
    const gateway = fakeGateway();
    const api = stubPlatform(gateway, shape);
    const client = createClient({ baseUrl: 'https://gw.test', appid: 'app-1', api });
    const first = await client.request({ url: '/api/one' });
    assert.equal(first.statusCode, 200);
    assert.equal(first.data.auth, 'Bearer at-1');
    assert.equal(gateway.state.logins, 1);
    const body = gateway.state.loginBodies[0];
    assert.match(body.code, /-code-1$/);
    assert.equal(body.appid, 'app-1');
    assert.equal(body.anonymous_code, shape === 'tt' ? 'tt-anon-1' : undefined);
    if (shape === 'my') assert.deepEqual(api.scopes, ['auth_base']);
    assert.equal(client.tokens().refresh_token, 'rt-1');

    gateway.state.validAccess.clear();
    const all = await Promise.all([1, 2, 3, 4].map((i) => client.request({ url: `/api/${i}` })));
    assert.ok(all.every((r) => r.statusCode === 200 && r.data.auth === 'Bearer at-2'));
    assert.equal(gateway.state.refreshes, 1, 'exactly one refresh');

    await client.logout();
    assert.equal(client.tokens(), null);
    assert.ok(gateway.state.seen.includes('POST /auth/logout'));
    assert.equal(gateway.state.validRefresh.size, 0);
  });
}

test('getPhoneNumber sends the button code, then refreshes so the tokens carry the number', async () => {
  const { gateway, client } = setup();
  await client.request({ url: '/api/x' });
  const before = client.tokens();
  const phone = await client.getPhoneNumber('button-code');
  assert.deepEqual(phone, { phone_number: '+86 13800001111', pure_phone_number: '13800001111', country_code: '86' });
  // One refresh right after the phone call, with the refresh token the
  // phone call left as it was.
  const seen = gateway.state.seen;
  assert.deepEqual(seen.slice(seen.indexOf('POST /auth/phone')), ['POST /auth/phone', 'POST /auth/refresh']);
  assert.equal(gateway.state.refreshes, 1);
  assert.equal(gateway.state.logins, 1, 'no new login');
  const after = client.tokens();
  assert.notEqual(after.access_token, before.access_token);
  assert.notEqual(after.refresh_token, before.refresh_token);
  assert.ok(gateway.state.validRefresh.has(after.refresh_token));
  assert.ok(gateway.state.validAccess.has(after.access_token));
  await assert.rejects(client.getPhoneNumber(''), /needs the button/);
});

test('decrypt sends the data and iv, and a stale key is an error with its response', async () => {
  const { client } = setup();
  const data = await client.decrypt({ encryptedData: 'ok', iv: 'iv' });
  assert.equal(data.openId, 'o-1');
  await assert.rejects(client.decrypt({ encryptedData: 'stale', iv: 'iv' }), (err) => {
    assert.equal(err.response.statusCode, 409);
    assert.equal(err.response.data.error, 'session_key_expired');
    return true;
  });
});

test('checkSessionKey tells a good session_key from a stale one', async () => {
  const { gateway, client } = setup();
  assert.equal(await client.checkSessionKey(), true);
  gateway.state.keyValid = false;
  assert.equal(await client.checkSessionKey(), false);
});

test('a global platform object is found when none is passed', async () => {
  const gateway = fakeGateway();
  globalThis.swan = stubPlatform(gateway, 'swan');
  try {
    const client = createClient({ baseUrl: 'https://gw.test' });
    assert.equal((await client.request({ url: '/api/x' })).statusCode, 200);
    assert.match(gateway.state.loginBodies[0].code, /^swan-code-/);
  } finally {
    delete globalThis.swan;
  }
});

test('the global ks (Kuaishou) is found when none is passed', async () => {
  const gateway = fakeGateway();
  globalThis.ks = stubPlatform(gateway, 'ks');
  try {
    const client = createClient({ baseUrl: 'https://gw.test', appid: 'ks671234567890123456' });
    assert.equal((await client.request({ url: '/api/x' })).statusCode, 200);
    assert.match(gateway.state.loginBodies[0].code, /^ks-code-/);
    assert.equal(gateway.state.loginBodies[0].appid, 'ks671234567890123456');
  } finally {
    delete globalThis.ks;
  }
});
