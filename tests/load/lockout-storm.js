// Lockout storm: hundreds of parallel wrong-password logins on a few PESELs.
// RULES.md "Lockout", concurrency: however many attempts for one PESEL arrive at once,
// at most lockout.max_failures credential checks can fail before the lock holds.
//
//   setup     defines passwords for TARGETS registry people (so a correct password
//             exists), reads maxFailures from /api/v1/meta, snapshots the service's
//             hash counter (census_hash_duration_seconds_count on /metrics).
//   storm     VUS VUs share ATTEMPTS wrong-password logins, round-robin over the
//             targets, all at once, each from its own client IP. A 503 overloaded is
//             sent again after Retry-After (up to RETRIES times), as a bot would; each
//             attempt must end in 401 or 423. 401s are counted per target (tag target=tN).
//   teardown  verifies through the admin API (bearer ADMIN_TOKEN) and /metrics:
//             every target is locked; Argon2 hashes done during the storm <=
//             maxFailures x targets; the correct password is refused with 423 while
//             locked (not checked); admin unlock, then the correct password logs in.
//
// Thresholds: storm_401{target:tN} count <= MAX_FAILURES for every target (the rule;
// RULES.md answers the locking attempt 423, so a correct service gives MAX_FAILURES-1);
// storm_hashes <= MAX_FAILURES x TARGETS; storm_verify_ok rate == 1; checks; no 5xx but
// 503 overloaded; no request without an answer (http_req_failed). The latency of the
// 423s (storm_locked_duration) is reported, not judged: VUS requests arrive in the same
// millisecond, so it measures the burst's queueing; credential-stuffing.js and flood.js
// hold the cheap-rejection latency bounds.
//
// Env: TARGETS (default 4), VUS (default 300), ATTEMPTS (default 1200), MAX_FAILURES
// (default 5, checked against /api/v1/meta), RETRIES (default 30), ADMIN_TOKEN (required).
import { check, fail, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  ADMIN_TOKEN, adminGet, adminPost, api, definePasswords, envNum, fetchMeta, fetchMetrics, hashCapacity,
  hasRetryAfter, ipFor, isOverloaded, isSessionBody, jsonField, passwordFor, people, problemCode, scrapeMetric,
  withOverloadRetry, wrongPasswordFor,
} from './lib.js';

const TARGETS = envNum('TARGETS', 4);
const VUS = envNum('VUS', 300);
const ATTEMPTS = envNum('ATTEMPTS', 1200);
const MAX_FAILURES = envNum('MAX_FAILURES', 5);
const RETRIES = envNum('RETRIES', 30);
const HASH_METRIC = 'census_hash_duration_seconds_count';

// People [0, TARGETS) of the registry are the targets.
const targets = people.slice(0, TARGETS);
if (targets.length < TARGETS) throw new Error(`registry has only ${targets.length} usable people`);

const perTarget = {};
for (let t = 0; t < TARGETS; t++) perTarget[`storm_401{target:t${t}}`] = [`count<=${MAX_FAILURES}`];

export const options = {
  setupTimeout: '120s',
  teardownTimeout: '120s',
  scenarios: {
    storm: {
      executor: 'shared-iterations', exec: 'storm', vus: VUS, iterations: ATTEMPTS, maxDuration: '3m',
    },
    // Samples the hash pool while the storm runs (and keeps the run long enough for the
    // web dashboard to write its HTML report: a run shorter than ~2 s gets none).
    monitor: {
      executor: 'constant-vus', exec: 'monitor', vus: 1, duration: '3s', gracefulStop: '2s',
    },
  },
  thresholds: Object.assign({
    storm_401: [`count<=${MAX_FAILURES * TARGETS}`],
    storm_hashes: [`count<=${MAX_FAILURES * TARGETS}`],
    storm_verify_ok: ['rate==1'],
    storm_unexpected_5xx: ['count==0'],
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.99'],
  }, perTarget),
};

const c401 = new Counter('storm_401');
const c423 = new Counter('storm_423');
const c503 = new Counter('storm_503_overloaded');
const hashes = new Counter('storm_hashes');
const verifyOk = new Rate('storm_verify_ok');
const unexpected5xx = new Counter('storm_unexpected_5xx');
const lockedDuration = new Trend('storm_locked_duration', true);
const hashInUse = new Trend('storm_hash_slots_in_use');
const hashQueue = new Trend('storm_hash_queue_depth');

export function setup() {
  if (!ADMIN_TOKEN) fail('ADMIN_TOKEN is required (the admin API verifies the locks)');
  const meta = fetchMeta();
  const mf = meta.lockout ? meta.lockout.maxFailures : meta.maxFailures;
  if (mf !== MAX_FAILURES) fail(`service lockout.maxFailures is ${mf}, the script expects MAX_FAILURES=${MAX_FAILURES}`);
  definePasswords(targets, 13, 0, hashCapacity(8));
  for (const p of targets) {
    const r = adminGet(`/admin/v1/accounts/${p.pesel}`);
    if (r.status !== 200) fail(`admin GET account answered ${r.status}: ${String(r.body).slice(0, 200)}`);
    const lo = jsonField(r, 'lockout') || {};
    if (jsonField(r, 'passwordDefined') !== true || lo.lockedUntil) {
      fail(`target not ready (passwordDefined=${jsonField(r, 'passwordDefined')}, lockedUntil=${lo.lockedUntil}); ` +
        'run against a fresh service (run.sh does)');
    }
  }
  const before = scrapeMetric(fetchMetrics(), HASH_METRIC);
  if (!Number.isFinite(before)) fail(`/metrics has no ${HASH_METRIC}`);
  return { before };
}

export function storm() {
  const n = exec.scenario.iterationInTest;
  const t = n % TARGETS;
  const p = targets[t];
  // Like a real bot, a shed attempt (503 overloaded) is sent again after Retry-After:
  // the storm keeps pushing guesses until each one is checked (401) or refused (423).
  const res = withOverloadRetry(() => api('POST', '/api/v1/login', { pesel: p.pesel, password: wrongPasswordFor(p.pesel + n) }, {
    expect: [401, 423, 503], ip: ipFor(13, 1000 + n), tags: { endpoint: 'login', target: `t${t}` },
  }), RETRIES, 1, (r) => {
    if (r.status === 401) c401.add(1, { target: `t${t}` });
    else if (r.status === 423) {
      c423.add(1, { target: `t${t}` });
      lockedDuration.add(r.timings.duration);
    } else if (isOverloaded(r)) c503.add(1, { target: `t${t}` });
    if ((r.status >= 500 && !isOverloaded(r)) || r.status === 0) unexpected5xx.add(1, { status: String(r.status) });
  });
  check(res, {
    'storm: 401 invalid_credentials or 423 account_locked (after retries of 503 overloaded)': (r) =>
      (r.status === 401 && problemCode(r) === 'invalid_credentials') ||
      (r.status === 423 && problemCode(r) === 'account_locked' && hasRetryAfter(r)),
  });
}

export function monitor() {
  const t = fetchMetrics();
  hashInUse.add(scrapeMetric(t, 'census_hash_slots_in_use'));
  hashQueue.add(scrapeMetric(t, 'census_hash_queue_depth'));
  sleep(0.1);
}

export function teardown(data) {
  const after = scrapeMetric(fetchMetrics(), HASH_METRIC);
  const delta = after - data.before;
  hashes.add(Number.isFinite(delta) ? delta : 1e9);
  console.log(`storm: ${delta} Argon2 hashes for ${TARGETS} targets (at most ${MAX_FAILURES * TARGETS} allowed)`);

  for (let t = 0; t < TARGETS; t++) {
    const p = targets[t];
    const acc = adminGet(`/admin/v1/accounts/${p.pesel}`);
    const lo = jsonField(acc, 'lockout') || {};
    console.log(`target t${t}: lockout ${JSON.stringify(lo)}`);
    verifyOk.add(check(acc, {
      'admin: target is locked after the storm': (r) => r.status === 200 && !!lo.lockedUntil &&
        Date.parse(lo.lockedUntil) > Date.now(),
    }));
    // Locked: even the right password is refused, without checking it.
    const right = api('POST', '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) }, {
      expect: [423], ip: ipFor(13, 500 + t), tags: { endpoint: 'login', phase: 'verify' },
    });
    verifyOk.add(check(right, {
      'locked: right password answered 423 account_locked': (r) => r.status === 423 && problemCode(r) === 'account_locked',
    }));
  }
  const afterRight = scrapeMetric(fetchMetrics(), HASH_METRIC);
  verifyOk.add(check(afterRight - after, { 'locked: right password not hashed': (d) => d === 0 }));

  for (let t = 0; t < TARGETS; t++) {
    const p = targets[t];
    const un = adminPost(`/admin/v1/accounts/${p.pesel}/unlock`);
    verifyOk.add(check(un, { 'admin: unlock 204': (r) => r.status === 204 }));
    const ok = api('POST', '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) }, {
      expect: [200], ip: ipFor(13, 600 + t), tags: { endpoint: 'login', phase: 'verify' },
    });
    verifyOk.add(check(ok, { 'unlocked: right password logs in (200)': (r) => r.status === 200 && isSessionBody(r) }));
    const acc = adminGet(`/admin/v1/accounts/${p.pesel}`);
    const lo = jsonField(acc, 'lockout') || {};
    verifyOk.add(check(acc, {
      'admin: failures cleared after unlock and login': () => !lo.lockedUntil && !lo.failures,
    }));
  }
}
