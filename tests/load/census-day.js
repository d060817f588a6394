// Census day: a realistic mix of traffic at a rate the 2-core box is sized for.
//
//   first_password  people who never logged in define their password (one Argon2id hash),
//                   look at their session, half of them log out again
//   returning_login people who defined a password earlier (in setup) log in, check the
//                   session a few times, half log out (then the session must be gone)
//   typo_login      returning people type a wrong password first (401), then the right one
//   pesel_check     the page validates PESELs as people type (cheap, no registry look-up)
//
// Every hashing flow arrives from the census form as it will on the day: GET /oidc/authorize
// (no session: the login page), the login or definition, the page's continue, and the
// form's token request; the ID token must carry the person's nonce and PESEL.
//
// Define and login populations are disjoint slices of the demo registry:
//   [0, POOL)        returning_login, passwords defined by setup()
//   [POOL, 2*POOL)   typo_login, passwords defined by setup()
//   [2*POOL, ...)    first_password, each iteration a different never-defined person
//
// Env (k6 -e NAME=value or the process environment):
//   RATE      peak iterations/s of the hashing flows together (default 5, about 6 hashes/s)
//   DURATION  whole run, ramp up 25 % / hold 50 % / ramp down 25 % (default 2m)
//   POOL      people per returning/typo pool defined in setup (default 150)
//   THINK     think time scale in seconds between a person's steps (default 1)
//   DEFINE_SHARE, LOGIN_SHARE, TYPO_SHARE   split of RATE (default 0.35/0.45/0.20)
//   PESEL_CHECKS_PER_FLOW   PESEL checks per hashing-flow iteration (default 2)
//   CHEAP_P99_MS  p99 bound of the cheap endpoints (default 20)
import http from 'k6/http';
import { check, group } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import {
  api, definePasswords, durationSeconds, envNum, hashCapacity, hasRetryAfter, ipFor, isOverloaded,
  isSessionBody, mistyped, passwordFor, people, problemCode, setsSessionCookie, thinkTime,
  withOverloadRetry, wrongPasswordFor, jsonField, formAuthorize, formHandback, OIDC_CLIENT_ID,
} from './lib.js';

const RATE = envNum('RATE', 5);
const DURATION = __ENV.DURATION || '2m';
const SECONDS = durationSeconds(DURATION);
const POOL = envNum('POOL', 150);
const THINK = envNum('THINK', 1);
const SHARE = {
  define: envNum('DEFINE_SHARE', 0.35),
  login: envNum('LOGIN_SHARE', 0.45),
  typo: envNum('TYPO_SHARE', 0.2),
};
const PESEL_CHECKS = envNum('PESEL_CHECKS_PER_FLOW', 2);
const CHEAP_P99 = envNum('CHEAP_P99_MS', 20);
const RETRIES = 3; // polite client: retries after 503 overloaded, honouring Retry-After

const returningPool = people.slice(0, POOL);
const typoPool = people.slice(POOL, 2 * POOL);
const DEFINE_OFFSET = 2 * POOL;

// Upper bound of first_password iterations (ramp up + hold + ramp down at the peak rate).
const maxDefines = Math.ceil(perMinute(SHARE.define) / 60 * SECONDS * 0.75) + 10;
if (people.length - DEFINE_OFFSET < maxDefines) {
  throw new Error(`registry too small: ${people.length} usable people, need ${DEFINE_OFFSET + maxDefines} ` +
    `(2*POOL + defines at RATE=${RATE} for ${DURATION}); raise REGISTRY_COUNT in run.sh`);
}

function perMinute(share) {
  return Math.max(1, Math.round(RATE * share * 60));
}
function stages(target) {
  const up = Math.round(SECONDS * 0.25);
  const hold = Math.round(SECONDS * 0.5);
  return [
    { duration: `${up}s`, target },
    { duration: `${hold}s`, target },
    { duration: `${SECONDS - up - hold}s`, target: 0 },
  ];
}
function arrival(exec, share, iterSeconds) {
  const peak = perMinute(share) / 60;
  const vus = Math.ceil(peak * iterSeconds) + 2;
  return {
    executor: 'ramping-arrival-rate', exec, startRate: 0, timeUnit: '1m',
    preAllocatedVUs: vus, maxVUs: vus * 4, stages: stages(perMinute(share)), gracefulStop: '15s',
  };
}

export const options = {
  setupTimeout: '300s',
  scenarios: {
    first_password: arrival('firstPassword', SHARE.define, 2 + 3 * THINK),
    returning_login: arrival('returningLogin', SHARE.login, 2 + 5 * THINK),
    typo_login: arrival('typoLogin', SHARE.typo, 2 + 4 * THINK),
    pesel_check: arrival('peselCheck', PESEL_CHECKS, 1),
  },
  thresholds: {
    // Unexpected statuses (each request declares its expected ones).
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    // Cheap endpoints stay fast while hashing runs.
    'http_req_duration{kind:cheap}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{endpoint:pesel_check}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{endpoint:session}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{endpoint:logout}': [`p(99)<${CHEAP_P99}`],
    // Hashing endpoints at the sized rate: a short queue at most.
    'http_req_duration{kind:hash}': ['p(95)<1000', 'p(99)<2000'],
    // At the sized rate the service should rarely shed load.
    census_overloaded: ['rate<0.02'],
    census_people_exhausted: ['count==0'],
    census_flows_ok: ['rate>0.99'],
    // The hand-off adds no hashing: three cheap requests (a store round trip or two, one ES256 signature).
    'http_req_duration{kind:handoff}': ['p(99)<100'],
    census_handoffs_ok: ['rate>0.99'],
  },
};

if (!OIDC_CLIENT_ID) throw new Error('OIDC_CLIENT_ID is not set: run census-day.js through tests/load/run.sh');

const overloaded = new Rate('census_overloaded'); // share of hashing requests shed with 503
const exhausted = new Counter('census_people_exhausted');
const flowsOk = new Rate('census_flows_ok'); // a person's whole flow ended as expected
const loginsOk = new Counter('census_logins_ok');
const definesOk = new Counter('census_defines_ok');
const handoffsOk = new Rate('census_handoffs_ok'); // arrived from the form, returned with verified-looking claims

// The person arrives from the census form: the login page with a waiting request.
function arriveFromForm(ip) {
  const req = formAuthorize(ip);
  check(req.authorizeRes, { 'authorize: 302 to the login page with a request id': () => req.id !== null });
  return req;
}

// Back to the form after the login: the code, redeemed by the form's back end.
function returnToForm(req, p, jar, ip) {
  if (!req.id) {
    handoffsOk.add(false);
    return false;
  }
  const back = formHandback(req, jar, ip);
  const ok = check(back, {
    'continue: 200 with a redirect carrying the code and state': (b) => b.continued.status === 200 && b.stateOk,
    'token: 200 with an ID token for this person (nonce, PESEL)': (b) => b.token !== null && b.token.status === 200 &&
      b.claims !== null && b.claims.nonce === req.nonce && b.claims.pesel === p.pesel,
  });
  handoffsOk.add(ok);
  return ok;
}

// Every hashing attempt: was it shed? A shed one must say when to come back.
const HASH_RETRY = (res) => {
  overloaded.add(isOverloaded(res));
  if (res.status === 503) {
    check(res, { '503 is overloaded with Retry-After': (r) => isOverloaded(r) && hasRetryAfter(r) });
  }
};

export function setup() {
  const cap = hashCapacity(8);
  const t0 = Date.now();
  definePasswords(returningPool, 10, 0, cap);
  definePasswords(typoPool, 10, POOL, cap);
  console.log(`setup: defined ${2 * POOL} passwords in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
    `(batches of ${cap}); peak rate ${RATE}/s of hashing flows for ${DURATION}`);
  return {};
}

function sessionCheck(jar, ip, expectStatus) {
  const res = api('GET', '/api/v1/session', null, {
    expect: [expectStatus], jar, ip, tags: { endpoint: 'session', kind: 'cheap' },
  });
  const ok = expectStatus === 200
    ? check(res, { 'session: 200 with session body': (r) => r.status === 200 && isSessionBody(r) })
    : check(res, {
      'session after logout: 401 not_authenticated': (r) => r.status === 401 && problemCode(r) === 'not_authenticated',
    });
  return ok;
}

function logout(jar, ip) {
  const res = api('POST', '/api/v1/logout', null, {
    expect: [204], jar, ip, tags: { endpoint: 'logout', kind: 'cheap' },
  });
  const ok = check(res, {
    'logout: 204, cookie cleared': (r) => r.status === 204 &&
      /census_session=;|census_session=[^;]*;.*(max-age=0|expires=thu, 01 jan 1970)/i.test(r.headers['Set-Cookie'] || ''),
  });
  // The session is gone on the server, whatever the client keeps: ask with the old cookie.
  return sessionCheck(jar, ip, 401) && ok;
}

// A correct login, retried politely while the service sheds load.
function correctLogin(p, jar, ip) {
  return withOverloadRetry(() => api('POST', '/api/v1/login',
    { pesel: p.pesel, password: passwordFor(p.pesel) },
    { expect: [200, 503], jar, ip, tags: { endpoint: 'login', kind: 'hash' } }), RETRIES, 2, HASH_RETRY);
}

// The rest of a visit once signed in: `checks` session checks, then a logout with
// probability `logoutShare`.
function browse(jar, ip, checks, logoutShare) {
  let ok = true;
  for (let k = 0; k < checks; k++) {
    thinkTime(THINK);
    ok = sessionCheck(jar, ip, 200) && ok;
  }
  if (Math.random() < logoutShare) {
    thinkTime(THINK);
    ok = logout(jar, ip) && ok;
  }
  return ok;
}

function peselCheckOnce(pesel, ip) {
  const res = api('POST', '/api/v1/pesel/check', { pesel }, {
    expect: [200], ip, tags: { endpoint: 'pesel_check', kind: 'cheap' },
  });
  return check(res, {
    'pesel check: 200 valid': (r) => r.status === 200 && jsonField(r, 'valid') === true &&
      /^\d{4}-\d{2}-\d{2}$/.test(jsonField(r, 'birthDate') || '') && ['female', 'male'].includes(jsonField(r, 'sex')),
  });
}

export function firstPassword() {
  const i = exec.scenario.iterationInTest;
  const idx = DEFINE_OFFSET + i;
  if (idx >= people.length) {
    exhausted.add(1);
    return;
  }
  const p = people[idx];
  const ip = ipFor(10, idx);
  const jar = new http.CookieJar();
  let ok = true;
  group('first password', () => {
    const req = arriveFromForm(ip);
    ok = peselCheckOnce(p.pesel, ip) && ok;
    thinkTime(THINK);
    // Some people type the maiden name in capitals: compared case-insensitively.
    const name = Math.random() < 0.2 ? p.name.toUpperCase() : p.name;
    const pw = passwordFor(p.pesel);
    const res = withOverloadRetry(() => api('POST', '/api/v1/password',
      { pesel: p.pesel, motherMaidenName: name, password: pw, passwordRepeat: pw },
      { expect: [201, 503], jar, ip, tags: { endpoint: 'define', kind: 'hash' } }), RETRIES, 2, HASH_RETRY);
    const defined = check(res, {
      'define: 201 with session body': (r) => r.status === 201 && isSessionBody(r),
      'define: session cookie HttpOnly SameSite=Strict': (r) => r.status !== 201 || setsSessionCookie(r),
    });
    ok = defined && ok;
    if (!defined) return;
    definesOk.add(1);
    ok = returnToForm(req, p, jar, ip) && ok;
    ok = browse(jar, ip, 1, 0.5) && ok;
  });
  flowsOk.add(ok);
}

export function returningLogin() {
  const i = exec.scenario.iterationInTest % returningPool.length;
  const p = returningPool[i];
  const ip = ipFor(10, i);
  const jar = new http.CookieJar();
  let ok = true;
  group('returning login', () => {
    const req = arriveFromForm(ip);
    const res = correctLogin(p, jar, ip);
    const logged = check(res, {
      'login: 200 with session body': (r) => r.status === 200 && isSessionBody(r),
      'login: session cookie HttpOnly SameSite=Strict': (r) => r.status !== 200 || setsSessionCookie(r),
    });
    ok = logged && ok;
    if (!logged) return;
    loginsOk.add(1);
    ok = returnToForm(req, p, jar, ip) && ok;
    ok = browse(jar, ip, 1 + Math.floor(Math.random() * 3), 0.5) && ok;
  });
  flowsOk.add(ok);
}

export function typoLogin() {
  const i = exec.scenario.iterationInTest % typoPool.length;
  const p = typoPool[i];
  const ip = ipFor(10, POOL + i);
  const jar = new http.CookieJar();
  let ok = true;
  group('typo then login', () => {
    const req = arriveFromForm(ip);
    const bad = withOverloadRetry(() => api('POST', '/api/v1/login',
      { pesel: p.pesel, password: wrongPasswordFor(p.pesel) },
      { expect: [401, 503], jar, ip, tags: { endpoint: 'login', kind: 'hash', expected: 'invalid_credentials' } }),
    RETRIES, 2, HASH_RETRY);
    ok = check(bad, {
      'typo: 401 invalid_credentials': (r) => r.status === 401 && problemCode(r) === 'invalid_credentials',
      'typo: no session cookie': (r) => !r.cookies.census_session || r.cookies.census_session.every((c) => c.value === ''),
    }) && ok;
    thinkTime(THINK);
    const res = correctLogin(p, jar, ip);
    const logged = check(res, { 'login after typo: 200 with session body': (r) => r.status === 200 && isSessionBody(r) });
    ok = logged && ok;
    if (!logged) return;
    loginsOk.add(1);
    ok = returnToForm(req, p, jar, ip) && ok;
    ok = browse(jar, ip, 1, 0.3) && ok;
  });
  flowsOk.add(ok);
}

export function peselCheck() {
  const n = exec.scenario.iterationInTest;
  const p = people[Math.floor(Math.random() * people.length)];
  const ip = ipFor(12, n % 50000);
  if (Math.random() < 0.85) {
    peselCheckOnce(p.pesel, ip);
    return;
  }
  // A typo in the check digit: structurally invalid, reported as pesel_checksum.
  const res = api('POST', '/api/v1/pesel/check', { pesel: mistyped(p.pesel) }, {
    expect: [200, 422], ip, tags: { endpoint: 'pesel_check', kind: 'cheap', expected: 'invalid' },
  });
  check(res, {
    'pesel check (typo): invalid, pesel_checksum': (r) => {
      if (r.status === 422) {
        const v = jsonField(r, 'violations') || [];
        return problemCode(r) === 'validation_failed' && v.some((x) => x.field === 'pesel' && x.code === 'pesel_checksum');
      }
      return r.status === 200 && jsonField(r, 'valid') === false;
    },
  });
}
