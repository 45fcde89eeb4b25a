// The ES module entry of minigate-client: the same client as minigate.js
// (the CommonJS entry), for `import` and for bundlers (Taro, uni-app, Vite).
import client from './minigate.js';

export const { createClient } = client;
export default client;
