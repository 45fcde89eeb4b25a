// Types of minigate-client (minigate.js / minigate.mjs).

/** The answer of a request, as the platform's `request` gives it (Alipay's `status`/`headers` renamed). */
export interface Response<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

/** A request: the platform's `request` options, with `url` a path on `baseUrl` or a whole URL. */
export interface RequestOptions {
  url: string;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';
  data?: unknown;
  header?: Record<string, string>;
  [option: string]: unknown;
}

/** A WebSocket to open: `url` a path on `baseUrl` (ws/wss from http/https) or a whole ws(s) URL. */
export interface SocketOptions {
  url: string;
  header?: Record<string, string>;
  protocols?: string[];
  [option: string]: unknown;
}

/** The tokens kept in the platform's storage. */
export interface StoredTokens {
  access_token: string;
  refresh_token: string;
  openid: string;
  /** When the access token expires, in milliseconds since the epoch. */
  expires_at?: number;
}

/**
 * The platform's API object: `wx`, `qq`, `tt` (Douyin; Feishu), `swan` (Baidu), `my` (Alipay), `ks` (Kuaishou),
 * or Taro / uni. Only what the client calls is listed.
 */
export interface PlatformApi {
  login?(options: object): unknown;
  /** Alipay: the login code is `authCode`. */
  getAuthCode?(options: object): unknown;
  request(options: object): unknown;
  getStorageSync(key: any): any;
  setStorageSync(key: any, value?: any): unknown;
  removeStorageSync(key: any): unknown;
  connectSocket?(options: object): any;
}

export interface ClientOptions {
  /** The gateway, e.g. `https://api.example.com`. */
  baseUrl: string;
  /** The mini-program's appid: needed when the gateway serves several. */
  appid?: string;
  /** The platform's API object; default: the first of wx, qq, tt, swan, my, ks, Taro, uni found as a global. */
  api?: PlatformApi;
  /** @deprecated use `api`. */
  wx?: PlatformApi;
  /** Force Alipay's calling conventions (`my.getAuthCode`, `headers`, `{ key, data }` storage), or not; detected when absent. */
  platform?: 'wechat' | 'qq' | 'douyin' | 'baidu' | 'alipay' | 'kuaishou' | 'feishu';
  /** The storage key of the tokens; default `minigate.tokens`. */
  storageKey?: string;
  /**
   * Called when the gateway says the session ended for a reason the user should hear of,
   * instead of a silent new login: the tokens are forgotten, the request that found out fails
   * with an error whose `reason` is the same, and the next request (or `login()`) logs in
   * again. An expiry (no reason, or `idle`) still logs in again silently. Without this hook
   * every ended session logs in again silently.
   */
  onSessionEnded?(reason: SessionEndReason): void;
  /** A name of the device for the user's session list ("iPhone 15"); characters other than printable ASCII are dropped, and it is cut to 64. */
  deviceName?: string;
}

/** Why the gateway ended a session (the `reason` of its 401 / 400 answers). */
export type SessionEndReason = 'replaced' | 'logged_out' | 'revoked' | 'reused' | 'banned' | 'idle';

export interface Client {
  /** A request with the access token; one shared refresh (or login) and one retry on 401. */
  request<T = any>(options: RequestOptions): Promise<Response<T>>;
  /** Opens the platform's WebSocket with the access token, renewed first if about to expire. */
  connectSocket(options: SocketOptions): Promise<any>;
  /**
   * WeChat's phone number from the getPhoneNumber button's `e.detail.code`: verified by the
   * gateway and kept with the session (no token is minted); the client refreshes right after,
   * and the stored pair of that refresh carries it (claim `phone_number`).
   */
  getPhoneNumber(code: string): Promise<{ phone_number: string; pure_phone_number: string; country_code: string }>;
  /** WeChat's legacy `encryptedData`, decrypted by the gateway with the session's `session_key`. */
  decrypt<T = any>(data: { encryptedData: string; iv: string }): Promise<T>;
  /** WeChat: whether WeChat still holds the session's `session_key` (`checksession`, asked by the gateway); `false`: log in again before asking the user for encrypted data. */
  checkSessionKey(): Promise<boolean>;
  /** Logs in now (a new login session), whatever is stored. */
  login(): Promise<StoredTokens>;
  /** Forgets the tokens and ends the login session at the gateway. */
  logout(): Promise<void>;
  /** The stored tokens, or null. */
  tokens(): StoredTokens | null;
}

export function createClient(options: ClientOptions): Client;

declare const client: { createClient: typeof createClient };
export default client;
