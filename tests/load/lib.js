// Shared helpers for the census-login k6 scripts. Local module only: the scripts
// import nothing from the internet (k6/http, k6/data, k6/metrics, k6/execution are
// built into k6).
import http from 'k6/http';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ADMIN_URL = (__ENV.ADMIN_URL || 'http://127.0.0.1:9090').replace(/\/$/, '');
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || '';
// The service refuses a state-changing request whose Origin is not server.public_origin;
// browsers send Origin on every POST, so the scripts do too.
export const ORIGIN = __ENV.ORIGIN || BASE_URL;
export const DATA_FILE = __ENV.DATA_FILE || '../../target/load/people.csv';
// k6's default request timeout is 60 s; a login that takes longer than this is a failure.
export const TIMEOUT = __ENV.HTTP_TIMEOUT || '10s';

// ---------------------------------------------------------------- env helpers

export function envNum(name, dflt) {
  const v = __ENV[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

// "90s", "2m", "1m30s", "1h", "500ms" -> seconds.
export function durationSeconds(s) {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let matched = '';
  let m;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    matched += m[0];
  }
  if (matched !== s) throw new Error(`bad duration ${JSON.stringify(s)} (use e.g. 90s, 2m, 1m30s)`);
  return total;
}

// ---------------------------------------------------------------- demo people

// The CSV written by `census-login registry generate`: header
// `pesel,mother_maiden_name,reserved`. Names hold only letters, spaces, hyphens and
// apostrophes, so a plain split is enough (surrounding quotes are stripped anyway).
function parsePeople(text) {
  const lines = text.split('\n');
  const header = lines[0].replace(/\r$/, '').split(',').map((h) => h.trim());
  const iP = header.indexOf('pesel');
  const iN = header.indexOf('mother_maiden_name');
  const iR = header.indexOf('reserved');
  if (iP < 0 || iN < 0) throw new Error(`${DATA_FILE}: header must be pesel,mother_maiden_name,reserved`);
  const out = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line.trim() === '') continue;
    const f = line.split(',').map((x) => x.trim().replace(/^"(.*)"$/, '$1'));
    out.push({ pesel: f[iP], name: f[iN], reserved: iR >= 0 && f[iR] === 'true' });
  }
  return out;
}

// Non-reserved people, in file order (deterministic: every VU sees the same list).
export const people = new SharedArray('people', () => {
  const all = parsePeople(open(DATA_FILE));
  const usable = all.filter((p) => !p.reserved);
  if (usable.length === 0) throw new Error(`${DATA_FILE}: no usable (non-reserved) people`);
  return usable;
});

// Deterministic password of a demo person: satisfies the policy (8-128 printable ASCII,
// an uppercase letter, a digit), does not contain the PESEL, not a common password.
function fnv(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}
export function passwordFor(pesel) {
  return `Spis-${fnv('pw:' + pesel)}-Kx7`;
}
export function wrongPasswordFor(pesel) {
  return `Spis-${fnv('typo:' + pesel)}-Kx8`;
}

// A structurally valid PESEL (checksum, existing past date) made from an index, for
// people who are not in the registry (the lockout counts any well-formed PESEL).
// Distinct n (< 25 200 * 10 000) give distinct PESELs for a fixed salt.
const DAYS = 75 * 12 * 28; // years 1930-2004, days 1-28
export function syntheticPesel(n, salt) {
  const d = (Math.floor(n / 10000) + (salt || 0)) % DAYS;
  const serial = n % 10000;
  const year = 1930 + Math.floor(d / (12 * 28));
  const month = Math.floor(d / 28) % 12 + 1;
  const day = (d % 28) + 1;
  const mm = year >= 2000 ? month + 20 : month;
  const s = pad2(year % 100) + pad2(mm) + pad2(day) + String(serial).padStart(4, '0');
  return s + checksumDigit(s);
}
function pad2(n) {
  return String(n).padStart(2, '0');
}
export function checksumDigit(first10) {
  const w = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += w[i] * Number(first10[i]);
  return String((10 - (sum % 10)) % 10);
}
// Same PESEL with a wrong check digit (a typo in the last digit).
export function mistyped(pesel) {
  const q = (Number(pesel[10]) + 1 + Math.floor(Math.random() * 9)) % 10;
  return pesel.slice(0, 10) + String(q);
}

// A client IP for X-Forwarded-For (run.sh trusts 127.0.0.1/32 as a proxy).
// `first` picks a /8 per population so populations never share an address.
export function ipFor(first, n) {
  const x = n % 16777216;
  return `${first}.${(x >> 16) & 255}.${(x >> 8) & 255}.${x & 255}`;
}

// ---------------------------------------------------------------- HTTP helpers

const callbacks = {};
function callbackFor(expect) {
  const key = expect.join(',');
  if (!callbacks[key]) callbacks[key] = http.expectedStatuses(...expect);
  return callbacks[key];
}

// One request to the public API.
// opts: expect (statuses that are not failures), tags, jar, ip, cookies, timeout.
export function api(method, path, body, opts) {
  const o = opts || {};
  const headers = { Accept: 'application/json' };
  if (method === 'POST') {
    headers['Content-Type'] = 'application/json';
    headers.Origin = ORIGIN;
  }
  if (o.ip) headers['X-Forwarded-For'] = o.ip;
  const params = {
    headers,
    tags: Object.assign({ name: `${method} ${path}` }, o.tags || {}),
    responseCallback: callbackFor(o.expect || [200]),
    timeout: o.timeout || TIMEOUT,
  };
  if (o.jar) params.jar = o.jar;
  if (o.cookies) params.cookies = o.cookies;
  const payload = body === null || body === undefined ? null : JSON.stringify(body);
  return http.request(method, BASE_URL + path, payload, params);
}

// The request params for http.batch, same conventions as api().
export function batchItem(method, path, body, opts) {
  const o = opts || {};
  const headers = { Accept: 'application/json', 'Content-Type': 'application/json', Origin: ORIGIN };
  if (o.ip) headers['X-Forwarded-For'] = o.ip;
  return {
    method,
    url: BASE_URL + path,
    body: body === null || body === undefined ? null : JSON.stringify(body),
    params: {
      headers,
      tags: Object.assign({ name: `${method} ${path}` }, o.tags || {}),
      responseCallback: callbackFor(o.expect || [200]),
      timeout: o.timeout || TIMEOUT,
      jar: o.jar || new http.CookieJar(),
    },
  };
}

// `code` of an RFC 9457 problem body, or undefined.
export function problemCode(res) {
  try {
    const b = res.json();
    return b && typeof b === 'object' ? b.code : undefined;
  } catch (_) {
    return undefined;
  }
}
export function jsonField(res, field) {
  try {
    const b = res.json();
    return b && typeof b === 'object' ? b[field] : undefined;
  } catch (_) {
    return undefined;
  }
}

export function isOverloaded(res) {
  return res.status === 503 && problemCode(res) === 'overloaded';
}

// Retry-After (seconds) as sent by the service, or NaN.
export function retryAfter(res) {
  const v = res.headers['Retry-After'];
  return v === undefined ? NaN : Number(v);
}

// A problem response with a Retry-After header and the same retryAfterSeconds in the body.
export function hasRetryAfter(res) {
  const h = retryAfter(res);
  const b = jsonField(res, 'retryAfterSeconds');
  return Number.isFinite(h) && h >= 0 && Number(b) === h;
}

// A session body: {"firstLoginAt","windowEndsAt","expiresAt"} (RFC 3339).
export function isSessionBody(res) {
  try {
    const b = res.json();
    return ['firstLoginAt', 'windowEndsAt', 'expiresAt'].every(
      (k) => typeof b[k] === 'string' && !Number.isNaN(Date.parse(b[k])),
    );
  } catch (_) {
    return false;
  }
}

// The Set-Cookie of a new session: census_session, HttpOnly, SameSite=Strict, Path=/.
export function setsSessionCookie(res) {
  const c = res.cookies.census_session;
  if (!c || c.length === 0) return false;
  const k = c[0];
  return k.value !== '' && k.http_only === true && k.path === '/' &&
    /samesite=strict/i.test(res.headers['Set-Cookie'] || '');
}

// A request on the hashing path, retried like a polite client when the service sheds
// load (503 overloaded, Retry-After): at most `retries` retries, waiting Retry-After
// (capped at `maxWait` s, jittered). `onResponse(res)` sees every attempt.
export function withOverloadRetry(send, retries, maxWait, onResponse) {
  for (let i = 0; ; i++) {
    const res = send();
    if (onResponse) onResponse(res);
    if (!isOverloaded(res) || i >= retries) return res;
    const ra = retryAfter(res);
    const wait = Math.min(Number.isFinite(ra) ? Math.max(ra, 0.2) : 1, maxWait);
    sleep(wait * (0.5 + Math.random()));
  }
}

// ---------------------------------------------------------------- admin listener

export function adminGet(path) {
  return http.get(ADMIN_URL + path, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    tags: { name: `GET admin ${path.replace(/\/\d{11}(\/|$)/, '/{pesel}$1')}`, endpoint: 'admin' },
    responseCallback: callbackFor([200]),
  });
}
export function adminPost(path) {
  return http.post(ADMIN_URL + path, null, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    tags: { name: `POST admin ${path.replace(/\/\d{11}(\/|$)/, '/{pesel}$1')}`, endpoint: 'admin' },
    responseCallback: callbackFor([204]),
  });
}

// Sum of the samples of a Prometheus metric (optionally only those whose label set
// contains every `labels` entry) from the admin /metrics page; NaN if absent.
export function scrapeMetric(text, name, labels) {
  let sum = NaN;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] || '';
    if (labels && !Object.keys(labels).every((k) => ls.includes(`${k}="${labels[k]}"`))) continue;
    sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[3]);
  }
  return sum;
}
export function fetchMetrics() {
  const res = http.get(ADMIN_URL + '/metrics', {
    tags: { name: 'GET admin /metrics', endpoint: 'admin' },
    responseCallback: callbackFor([200]),
  });
  if (res.status !== 200) throw new Error(`GET ${ADMIN_URL}/metrics answered ${res.status}`);
  return res.body;
}

// Hashing capacity (slots + queue) as the service reports it; `dflt` when unknown.
export function hashCapacity(dflt) {
  try {
    const t = fetchMetrics();
    const c = scrapeMetric(t, 'census_hash_slots') + scrapeMetric(t, 'census_hash_queue_capacity');
    return Number.isFinite(c) && c > 0 ? c : dflt;
  } catch (_) {
    return dflt;
  }
}

export function fetchMeta() {
  const res = http.get(BASE_URL + '/api/v1/meta', {
    tags: { name: 'GET /api/v1/meta', endpoint: 'meta' },
    responseCallback: callbackFor([200]),
  });
  if (res.status !== 200) throw new Error(`GET /api/v1/meta answered ${res.status}`);
  return res.json();
}

// Define passwords (POST /api/v1/password) for `list` of people before the load starts,
// `capacity` at a time, each from its own client IP, retrying 503 overloaded. Returns the
// session cookie values (one per person, null where the password was already defined by
// an earlier run against the same service). Throws when someone cannot be defined.
export function definePasswords(list, ipFirstOctet, ipOffset, capacity) {
  const cookies = new Array(list.length).fill(null);
  let pending = list.map((_, i) => i);
  for (let round = 0; pending.length > 0; round++) {
    if (round > 60) throw new Error(`setup: ${pending.length} people still could not be defined`);
    const retry = [];
    for (let s = 0; s < pending.length; s += capacity) {
      const chunk = pending.slice(s, s + capacity);
      const reqs = chunk.map((i) => {
        const p = list[i];
        return batchItem('POST', '/api/v1/password',
          { pesel: p.pesel, motherMaidenName: p.name, password: passwordFor(p.pesel), passwordRepeat: passwordFor(p.pesel) },
          { expect: [201, 409, 503], ip: ipFor(ipFirstOctet, ipOffset + i), tags: { endpoint: 'setup_define', kind: 'setup' } });
      });
      const rs = http.batch(reqs);
      rs.forEach((r, j) => {
        const i = chunk[j];
        if (r.status === 201) {
          const c = r.cookies.census_session;
          cookies[i] = c && c.length ? c[0].value : null;
        } else if (r.status === 409 && problemCode(r) === 'password_already_defined') {
          cookies[i] = null;
        } else if (isOverloaded(r)) {
          retry.push(i);
        } else {
          throw new Error(`setup: defining a password answered ${r.status} ${String(r.body).slice(0, 300)}`);
        }
      });
    }
    pending = retry;
    if (pending.length) sleep(0.5);
  }
  return cookies;
}

export function thinkTime(scale) {
  if (scale > 0) sleep(scale * (0.5 + Math.random()));
}

// ---------------------------------------------------------------- hand-off from the census form (OIDC)
// People arrive from the census form (the relying party): it sends them to the
// authorization endpoint, the login page carries the request through login or password
// definition, then the form's back end redeems the code. run.sh configures the client.

export const OIDC_CLIENT_ID = __ENV.OIDC_CLIENT_ID || '';
export const OIDC_CLIENT_SECRET = __ENV.OIDC_CLIENT_SECRET || '';
export const OIDC_REDIRECT_URI = __ENV.OIDC_REDIRECT_URI || 'https://form.load.test/callback';

function randomB64(n) {
  return encoding.b64encode(crypto.randomBytes(n), 'rawurl');
}

// GET /oidc/authorize without a session: the login page with the waiting request's id.
export function formAuthorize(ip) {
  const req = { verifier: randomB64(32), state: randomB64(12), nonce: randomB64(12), id: null };
  const q = [
    ['response_type', 'code'], ['client_id', OIDC_CLIENT_ID], ['redirect_uri', OIDC_REDIRECT_URI],
    ['scope', 'openid census'], ['state', req.state], ['nonce', req.nonce],
    ['code_challenge', crypto.sha256(req.verifier, 'base64rawurl')], ['code_challenge_method', 'S256'],
  ].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  const res = http.get(`${BASE_URL}/oidc/authorize?${q}`, {
    redirects: 0,
    headers: ip ? { 'X-Forwarded-For': ip } : {},
    tags: { name: 'GET /oidc/authorize', endpoint: 'oidc_authorize', kind: 'handoff' },
    responseCallback: callbackFor([302]),
    timeout: TIMEOUT,
  });
  const m = /^\/\?authz=([\w-]+)$/.exec(res.headers.Location || '');
  req.id = m ? m[1] : null;
  req.authorizeRes = res;
  return req;
}

function queryParam(url, name) {
  const m = new RegExp(`[?&]${name}=([^&]*)`).exec(url || '');
  return m ? decodeURIComponent(m[1].replace(/\+/g, ' ')) : null;
}

// After the login: the page continues the request (census_session in `jar`), the person
// lands at the form with a code, and the form's back end redeems it
// (client_secret_basic, PKCE). Returns {continued, token, claims}.
export function formHandback(req, jar, ip) {
  const cont = api('POST', `/api/v1/authorization-requests/${req.id}/continue`, null, {
    expect: [200], jar, ip, tags: { endpoint: 'oidc_continue', kind: 'handoff' },
  });
  const to = jsonField(cont, 'redirectTo') || '';
  const code = queryParam(to, 'code');
  const out = { continued: cont, token: null, claims: null, stateOk: queryParam(to, 'state') === req.state };
  if (!code) return out;
  out.token = http.post(`${BASE_URL}/oidc/token`, {
    grant_type: 'authorization_code', code, redirect_uri: OIDC_REDIRECT_URI, code_verifier: req.verifier,
  }, {
    headers: { Authorization: `Basic ${encoding.b64encode(`${OIDC_CLIENT_ID}:${OIDC_CLIENT_SECRET}`)}` },
    tags: { name: 'POST /oidc/token', endpoint: 'oidc_token', kind: 'handoff' },
    responseCallback: callbackFor([200]),
    timeout: TIMEOUT,
  });
  const idToken = jsonField(out.token, 'id_token');
  if (typeof idToken === 'string' && idToken.split('.').length === 3) {
    try {
      out.claims = JSON.parse(encoding.b64decode(idToken.split('.')[1], 'rawurl', 's'));
    } catch (e) {
      out.claims = null;
    }
  }
  return out;
}
