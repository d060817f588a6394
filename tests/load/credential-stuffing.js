// Credential stuffing: a botnet tries wrong passwords on many PESELs from many client
// IPs (X-Forwarded-For; run.sh trusts 127.0.0.1 as the proxy), while one greedy IP
// hammers the login on its own.
//
//   botnet     each iteration takes a fresh well-formed PESEL (not registered: the lockout
//              counts any PESEL) and tries MAX_FAILURES + EXTRA wrong passwords, each from
//              a different botnet IP. Expected, per RULES.md "Lockout":
//                attempts 1 .. MAX_FAILURES-1   401 invalid_credentials  (tag expected=invalid_credentials)
//                attempt MAX_FAILURES           423 account_locked, the attempt that locks (expected=locking)
//                later attempts                 423 account_locked, credentials not checked (expected=locked)
//              A 503 overloaded is retried (the attempt did not happen).
//   single_ip  one IP sends SINGLE_RATE logins/s (fresh PESELs, wrong passwords): past
//              rate_limit.burst and per_ip_per_minute it must get 429 rate_limited.
//
// Env: STUFF_RATE (sequences/s, default 3), SINGLE_RATE (req/s, default 8), DURATION
// (default 1m), MAX_FAILURES (default 5, checked against /api/v1/meta), EXTRA (default 2),
// BOTNET (IPs, default 5000), RL_BURST / RL_PER_MIN (the service's rate_limit.burst and
// per_ip_per_minute, defaults 30 / 120), CHEAP_P99_MS (default 20).
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  api, durationSeconds, envNum, fetchMeta, hasRetryAfter, ipFor, isOverloaded, jsonField, problemCode,
  syntheticPesel, wrongPasswordFor,
} from './lib.js';

const DURATION = __ENV.DURATION || '1m';
const SECONDS = durationSeconds(DURATION);
const STUFF_RATE = envNum('STUFF_RATE', 3);
const SINGLE_RATE = envNum('SINGLE_RATE', 8);
const MAX_FAILURES = envNum('MAX_FAILURES', 5);
const EXTRA = envNum('EXTRA', 2);
const ATTEMPTS = MAX_FAILURES + EXTRA;
const BOTNET = envNum('BOTNET', 5000);
const RL_BURST = envNum('RL_BURST', 30);
const RL_PER_MIN = envNum('RL_PER_MIN', 120);
const CHEAP_P99 = envNum('CHEAP_P99_MS', 20);
const GREEDY_IP = __ENV.GREEDY_IP || '198.51.100.7';

// Share of the greedy IP's requests the limiter must refuse: everything past the burst
// and the refill (token bucket), with half of it as slack for timing.
const singleTotal = SINGLE_RATE * SECONDS;
const singleAllowed = RL_BURST + (RL_PER_MIN / 60) * SECONDS;
const MIN_429_SHARE = Math.max(0, (1 - singleAllowed / singleTotal) * 0.5);

const up = Math.round(SECONDS * 0.2);
const hold = SECONDS - 2 * up;

export const options = {
  setupTimeout: '60s',
  scenarios: {
    botnet: {
      executor: 'ramping-arrival-rate', exec: 'botnet', startRate: 0, timeUnit: '1m',
      preAllocatedVUs: Math.ceil(STUFF_RATE * 4) + 5, maxVUs: Math.ceil(STUFF_RATE * 20) + 20,
      stages: [
        { duration: `${up}s`, target: Math.round(STUFF_RATE * 60) },
        { duration: `${hold}s`, target: Math.round(STUFF_RATE * 60) },
        { duration: `${up}s`, target: 0 },
      ],
      gracefulStop: '30s',
    },
    single_ip: {
      executor: 'constant-arrival-rate', exec: 'singleIp', rate: Math.round(SINGLE_RATE * 60), timeUnit: '1m',
      duration: DURATION, preAllocatedVUs: 10, maxVUs: 100, gracefulStop: '15s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.99'],
    stuffing_unexpected_5xx: ['count==0'],
    // Cheap rejections stay cheap while the botnet keeps the hashers busy.
    'http_req_duration{expected:locked}': [`p(99)<${CHEAP_P99}`],
    'stuffing_rejection_duration{status:423}': [`p(99)<${CHEAP_P99}`],
    'stuffing_rejection_duration{status:429}': [`p(99)<${CHEAP_P99}`],
    // Every botnet sequence went 401 x (MAX_FAILURES-1), then 423 from the locking attempt on.
    stuffing_sequence_ok: ['rate>0.99'],
    // The greedy IP was limited.
    stuffing_single_ip_429: [`rate>${MIN_429_SHARE.toFixed(3)}`],
  },
};

const unexpected5xx = new Counter('stuffing_unexpected_5xx');
const rejection = new Trend('stuffing_rejection_duration', true); // 423 (cheap) / 429, tagged by status
const sequenceOk = new Rate('stuffing_sequence_ok');
const single429 = new Rate('stuffing_single_ip_429');
const overloaded = new Counter('stuffing_overloaded_retries');
const transportErrors = new Counter('stuffing_transport_errors');

function watch5xx(res) {
  if (res.status >= 500 && !isOverloaded(res)) unexpected5xx.add(1, { status: String(res.status) });
  // No HTTP answer at all (timeout, connection closed): counted in http_req_failed too.
  if (res.status === 0) transportErrors.add(1);
}

export function setup() {
  const meta = fetchMeta();
  const mf = meta.lockout ? meta.lockout.maxFailures : meta.maxFailures;
  if (mf !== MAX_FAILURES) {
    throw new Error(`service lockout.maxFailures is ${mf}, the script expects MAX_FAILURES=${MAX_FAILURES}`);
  }
  // A salt per run, so that a second run against the same service uses other PESELs.
  return { salt: Math.floor(Date.now() / 1000) % 20000 };
}

function expectedFor(k) {
  if (k < MAX_FAILURES) return 'invalid_credentials';
  return k === MAX_FAILURES ? 'locking' : 'locked';
}

export function botnet(data) {
  const n = exec.scenario.iterationInTest;
  const pesel = syntheticPesel(n, data.salt);
  let ok = true;
  for (let k = 1; k <= ATTEMPTS; k++) {
    const expected = expectedFor(k);
    const ip = ipFor(11, (n * ATTEMPTS + k) % BOTNET);
    let res;
    for (let tries = 0; tries < 20; tries++) {
      res = api('POST', '/api/v1/login', { pesel, password: wrongPasswordFor(pesel + k) }, {
        expect: [401, 423, 503], ip, tags: { endpoint: 'login', expected },
      });
      watch5xx(res);
      if (!isOverloaded(res)) break;
      overloaded.add(1);
      sleep(0.2 + Math.random() * 0.5);
    }
    let good;
    if (expected === 'invalid_credentials') {
      good = check(res, {
        'botnet: 401 invalid_credentials before the lock': (r) => r.status === 401 && problemCode(r) === 'invalid_credentials',
      });
    } else {
      good = check(res, {
        [`botnet: 423 account_locked (${expected})`]: (r) => r.status === 423 && problemCode(r) === 'account_locked',
        'botnet: 423 has Retry-After and lockedUntil': (r) => r.status !== 423 ||
          (hasRetryAfter(r) && !Number.isNaN(Date.parse(jsonField(r, 'lockedUntil') || ''))),
      });
      if (res.status === 423 && expected === 'locked') rejection.add(res.timings.duration, { status: '423' });
    }
    check(res, { 'botnet: never rate limited (one attempt per IP)': (r) => r.status !== 429 });
    ok = ok && good;
    sleep(0.05 + Math.random() * 0.1);
  }
  sequenceOk.add(ok);
}

export function singleIp(data) {
  const n = exec.scenario.iterationInTest;
  const pesel = syntheticPesel(5000000 + n, data.salt);
  const res = api('POST', '/api/v1/login', { pesel, password: wrongPasswordFor(pesel) }, {
    expect: [401, 429, 503], ip: GREEDY_IP, tags: { endpoint: 'login', expected: 'invalid_or_rate_limited' },
  });
  watch5xx(res);
  single429.add(res.status === 429);
  if (res.status === 429) rejection.add(res.timings.duration, { status: '429' });
  check(res, {
    'greedy IP: 401 invalid_credentials or 429 rate_limited': (r) =>
      (r.status === 401 && problemCode(r) === 'invalid_credentials') ||
      (r.status === 429 && problemCode(r) === 'rate_limited') || isOverloaded(r),
    'greedy IP: 429 has Retry-After': (r) => r.status !== 429 || hasRetryAfter(r),
  });
}
