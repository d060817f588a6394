// Flood: thousands of concurrent logins far past the hashing capacity, plus a steady
// stream of cheap requests that must stay fast while the hashers are saturated.
//
//   flood  VUS VUs (constant-vus) log in again and again for DURATION, each login from a
//          random client IP. The first POOL x PER_PERSON VUs log in with the right
//          password of "their" person (VU v -> person (v-1) mod POOL, defined in setup):
//          expected 200, or 503 overloaded. At most PER_PERSON (default 4) logins of one
//          person are in flight at once: the lockout lets at most max_failures (5)
//          attempts of one PESEL run concurrently and answers the others 423, which is
//          not what this test is about. All other VUs log in with an unregistered PESEL,
//          a new one each time (verified against the dummy hash): expected 401, or 503.
//          A think time of THINK s (0.5-1.5x) between logins keeps the offered load
//          around VUS/THINK logins/s. Request timeout 10 s; a request that times out (or
//          gets no answer) has status 0 and counts as failed.
//   cheap  CHEAP_RATE requests/s, starting WARMUP s in, in turn: POST /api/v1/pesel/check,
//          GET /api/v1/session (cookie of a session made in setup) and a login of a person
//          setup locked (423, never hashed).
//
// Thresholds: every 503 overloaded held for the service's password.shed_delay
// (SHED_DELAY_MS, default 100 as in config/default.toml) and answered less than
// OVERLOAD_MAX_MS (default 100) after that; no
// timeouts, no status outside the expected set, no 5xx but 503 overloaded; saturation
// really reached (503 overloaded seen); the service still logs people in; cheap requests
// p99 < CHEAP_P99_MS (default 20).
//
// Env: VUS (default 2000), DURATION (default 1m), THINK (default 4), POOL (people defined
// in setup, default 100), PER_PERSON (default 4), CHEAP_RATE (default 40), WARMUP (default 10).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  api, definePasswords, durationSeconds, envNum, hashCapacity, hasRetryAfter, ipFor, isOverloaded,
  isSessionBody, jsonField, passwordFor, people, problemCode, syntheticPesel, thinkTime, wrongPasswordFor,
} from './lib.js';

const VUS = envNum('VUS', 2000);
const DURATION = __ENV.DURATION || '1m';
const SECONDS = durationSeconds(DURATION);
const THINK = envNum('THINK', 4);
const PER_PERSON = envNum('PER_PERSON', 4);
const POOL = envNum('POOL', 100);
const CHEAP_RATE = envNum('CHEAP_RATE', 40);
const WARMUP = envNum('WARMUP', 10);
const CHEAP_P99 = envNum('CHEAP_P99_MS', 20);
const SHED_DELAY = envNum('SHED_DELAY_MS', 100);
const OVERLOAD_MAX = SHED_DELAY + envNum('OVERLOAD_MAX_MS', 100);

const pool = people.slice(0, POOL);

export const options = {
  setupTimeout: '120s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  scenarios: {
    flood: {
      executor: 'constant-vus', exec: 'flood', vus: VUS, duration: DURATION, gracefulStop: '15s',
    },
    cheap: {
      executor: 'constant-arrival-rate', exec: 'cheap', rate: CHEAP_RATE, timeUnit: '1s',
      startTime: `${WARMUP}s`, duration: `${Math.max(1, SECONDS - WARMUP)}s`,
      preAllocatedVUs: Math.max(5, Math.ceil(CHEAP_RATE / 5)), maxVUs: CHEAP_RATE * 2,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    flood_timeouts: ['count==0'],
    flood_connection_errors: ['count==0'],
    flood_unexpected_5xx: ['count==0'],
    checks: ['rate>0.99'],
    flood_overloaded_duration: [`max<${OVERLOAD_MAX}`, `min>=${SHED_DELAY}`],
    flood_overloaded: ['count>0'], // the test reached saturation
    flood_logins_ok: ['count>0'], // and the service kept working through it
    'http_req_duration{scenario:cheap}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{scenario:cheap,endpoint:pesel_check}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{scenario:cheap,endpoint:session}': [`p(99)<${CHEAP_P99}`],
    'http_req_duration{scenario:cheap,endpoint:locked}': [`p(99)<${CHEAP_P99}`],
  },
};

const timeouts = new Counter('flood_timeouts');
const connectionErrors = new Counter('flood_connection_errors');
const unexpected5xx = new Counter('flood_unexpected_5xx');
const overloadedDuration = new Trend('flood_overloaded_duration', true);
const overloaded = new Counter('flood_overloaded');
const overloadedShare = new Rate('flood_overloaded_share');
const loginsOk = new Counter('flood_logins_ok');
const loginDuration = new Trend('flood_login_ok_duration', true);

export function setup() {
  const cookies = definePasswords(pool, 14, 0, hashCapacity(8));
  const sessions = cookies.filter((c) => c);
  if (sessions.length === 0) throw new Error('setup: no session cookie from defining passwords (fresh service needed)');
  // Someone outside the pool, locked by wrong passwords: the cheap 423 path.
  const locked = people[POOL];
  let status = 0;
  for (let i = 0; i < 10 && status !== 423; i++) {
    status = api('POST', '/api/v1/login', { pesel: locked.pesel, password: wrongPasswordFor(locked.pesel) }, {
      expect: [401, 423, 503], ip: ipFor(16, i), tags: { kind: 'setup' },
    }).status;
  }
  if (status !== 423) throw new Error(`setup: could not lock the cheap-path person (last status ${status})`);
  return { sessions: sessions.slice(0, 20), locked: locked.pesel, salt: Math.floor(Date.now() / 1000) % 20000 };
}

function watch(res) {
  if (res.status === 0) {
    // k6 error code 1050: request timeout; anything else: the connection failed or was
    // closed under the request (e.g. EOF on a reused keep-alive connection).
    if (res.error_code === 1050) timeouts.add(1);
    else connectionErrors.add(1, { error_code: String(res.error_code) });
  }
  else if (res.status >= 500 && !isOverloaded(res)) unexpected5xx.add(1, { status: String(res.status) });
  const ov = isOverloaded(res);
  overloadedShare.add(ov);
  if (ov) {
    overloaded.add(1);
    overloadedDuration.add(res.timings.duration);
    check(res, { 'flood: 503 overloaded has Retry-After': hasRetryAfter });
  }
}

export function flood(data) {
  const ip = ipFor(14, Math.floor(Math.random() * 16777216));
  // A fresh jar per login: nobody keeps the session, the next login starts clean.
  const jar = new http.CookieJar();
  if (__VU <= POOL * PER_PERSON) {
    const p = pool[(__VU - 1) % pool.length];
    const res = api('POST', '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) }, {
      expect: [200, 503], ip, jar, tags: { endpoint: 'login' },
    });
    watch(res);
    if (res.status === 200) {
      loginsOk.add(1);
      loginDuration.add(res.timings.duration);
    }
    check(res, {
      'flood: right password -> 200 or 503 overloaded': (r) => (r.status === 200 && isSessionBody(r)) || isOverloaded(r),
    });
  } else {
    const n = exec.scenario.iterationInTest;
    const pesel = syntheticPesel(n, data.salt);
    const res = api('POST', '/api/v1/login', { pesel, password: wrongPasswordFor(pesel) }, {
      expect: [401, 503], ip, jar, tags: { endpoint: 'login', expected: 'invalid_credentials' },
    });
    watch(res);
    check(res, {
      'flood: unknown PESEL -> 401 or 503 overloaded': (r) =>
        (r.status === 401 && problemCode(r) === 'invalid_credentials') || isOverloaded(r),
    });
  }
  thinkTime(THINK);
}

export function cheap(data) {
  const n = exec.scenario.iterationInTest;
  const ip = ipFor(15, n % 60000);
  if (n % 3 === 0) {
    const p = people[n % people.length];
    const res = api('POST', '/api/v1/pesel/check', { pesel: p.pesel }, {
      expect: [200], ip, tags: { endpoint: 'pesel_check', kind: 'cheap' },
    });
    watch(res);
    check(res, { 'cheap: pesel check 200 valid': (r) => r.status === 200 && jsonField(r, 'valid') === true });
  } else if (n % 3 === 1) {
    const token = data.sessions[n % data.sessions.length];
    const res = api('GET', '/api/v1/session', null, {
      expect: [200], ip, jar: new http.CookieJar(), cookies: { census_session: token },
      tags: { endpoint: 'session', kind: 'cheap' },
    });
    watch(res);
    check(res, { 'cheap: session 200': (r) => r.status === 200 && isSessionBody(r) });
  } else {
    const res = api('POST', '/api/v1/login', { pesel: data.locked, password: passwordFor(data.locked) }, {
      expect: [423], ip, jar: new http.CookieJar(), tags: { endpoint: 'locked', kind: 'cheap' },
    });
    watch(res);
    check(res, { 'cheap: locked person 423 account_locked': (r) => r.status === 423 && problemCode(r) === 'account_locked' });
  }
}
