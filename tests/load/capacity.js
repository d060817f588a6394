// Capacity probes, one MODE per k6 run; tests/load/capacity.sh runs them in sequence
// against one service (and the bare baseline server) and compares the results.
//
//   MODE=saturate  VUS VUs (default: hashing slots + queue places, read from /metrics) log
//                  in back to back for DURATION with the right password of their own
//                  person: the hash pool is always busy but never full, so every answer
//                  must be 200. Login throughput = logins_ok / s.
//   MODE=rate      RATE logins/s (constant arrival) for DURATION, people round-robin:
//                  login latency at a given share of the saturation throughput.
//   MODE=flood-baseline  flood.js's VU shape (VUS, default 2000, THINK s +-50 % between
//                  requests) against BASELINE_URL: what k6 itself adds to latencies
//                  with that many VUs on this machine.
//   MODE=probe     RATE requests/s (constant arrival) for DURATION, in turn: a locked
//                  person's login (423), a session check (200), a PESEL check (200);
//                  capacity.sh runs it beside the impolite wrk flood: cheap-path
//                  latency while the hashers are saturated (tags probe:locked|session|pesel).
//   MODE=cheap     VUS VUs for DURATION, back to back, one ENDPOINT:
//                    baseline  GET BASELINE_URL (bare actix-web + one Redis GET)
//                    locked    POST /login for a locked person (423, never hashed)
//                    session   GET /session with a valid cookie (200)
//                    pesel     POST /pesel/check (200)
//
// Every request declares its expected statuses; thresholds fail the run on any other.
import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  api, definePasswords, envNum, hashCapacity, ipFor, passwordFor, people, problemCode, wrongPasswordFor,
} from './lib.js';

const MODE = __ENV.MODE || 'cheap';
const ENDPOINT = __ENV.ENDPOINT || 'baseline';
const DURATION = __ENV.DURATION || '20s';
const BASELINE_URL = __ENV.BASELINE_URL || '';
const POOL_OFFSET = envNum('POOL_OFFSET', 0); // disjoint people per run on one service

const loginsOk = new Counter('logins_ok');
const unexpected = new Counter('unexpected_status');
const shed = new Counter('logins_shed');

function scenario() {
  if (MODE === 'flood-baseline') {
    return { executor: 'constant-vus', exec: 'floodBaseline', vus: envNum('VUS', 2000), duration: DURATION };
  }
  if (MODE === 'probe') {
    const rate = envNum('RATE', 30);
    return {
      executor: 'constant-arrival-rate', exec: 'probe', rate, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: 10, maxVUs: 50,
    };
  }
  if (MODE === 'rate') {
    const rate = envNum('RATE', 10);
    return {
      executor: 'constant-arrival-rate', exec: 'login', rate, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(rate)), maxVUs: Math.max(50, Math.ceil(rate * 4)),
    };
  }
  const vus = envNum('VUS', MODE === 'saturate' ? hashCapacity(10) : 20);
  return { executor: 'constant-vus', exec: MODE === 'saturate' ? 'login' : 'cheap', vus, duration: DURATION };
}

const sc = scenario();
export const options = {
  setupTimeout: '120s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  scenarios: { probe: sc },
  thresholds: {
    unexpected_status: ['count==0'],
    http_req_failed: ['rate==0'],
    'http_req_duration{probe:yes}': ['max>=0'], // makes the tagged trend appear in the summary
    'http_req_duration{probe:locked}': ['max>=0'],
    'http_req_duration{probe:session}': ['max>=0'],
    'http_req_duration{probe:pesel}': ['max>=0'],
  },
};

// saturate: one person per VU, so the lockout never sees concurrent attempts of one
// PESEL; rate: a pool big enough that a person is rarely logged in twice at once.
const POOL = MODE === 'saturate' ? sc.vus : envNum('POOL', 60);
const pool = people.slice(POOL_OFFSET, POOL_OFFSET + POOL);

export function setup() {
  const data = {};
  if (MODE === 'flood-baseline') return data;
  if (MODE === 'probe') {
    const [cookie] = definePasswords(pool.slice(1, 2), 21, POOL_OFFSET + 1, 1);
    if (!cookie) throw new Error('setup: no session cookie (person already defined? use a fresh POOL_OFFSET)');
    data.cookie = cookie;
    data.locked = lockPerson(pool[0]);
    return data;
  }
  if (MODE !== 'cheap') {
    definePasswords(pool, 21, POOL_OFFSET, hashCapacity(8));
    return data;
  }
  if (ENDPOINT === 'baseline' && !BASELINE_URL) throw new Error('ENDPOINT=baseline needs BASELINE_URL');
  if (ENDPOINT === 'session') {
    const [cookie] = definePasswords(pool.slice(0, 1), 21, POOL_OFFSET, 1);
    if (!cookie) throw new Error('setup: no session cookie (person already defined? use a fresh POOL_OFFSET)');
    data.cookie = cookie;
  }
  if (ENDPOINT === 'locked') data.locked = lockPerson(pool[0]);
  return data;
}

function lockPerson(p) {
  for (let i = 0; i < 8; i++) {
    const r = api('POST', '/api/v1/login', { pesel: p.pesel, password: wrongPasswordFor(p.pesel) },
      { expect: [401, 423, 503], ip: ipFor(22, i) });
    if (r.status === 423) break;
    if (r.status === 503) sleep(1);
  }
  const r = api('POST', '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) },
    { expect: [423], ip: ipFor(22, 99) });
  if (r.status !== 423) throw new Error(`setup: person not locked (${r.status} ${r.body})`);
  return p.pesel;
}

export function probe(data) {
  const ip = ipFor(25, exec.scenario.iterationInTest % 16000000);
  const which = exec.scenario.iterationInTest % 3;
  let res;
  if (which === 0) {
    res = api('POST', '/api/v1/login', { pesel: data.locked, password: passwordFor(data.locked) },
      { expect: [423], ip, tags: { probe: 'locked' } });
    expectStatus(res, 423);
  } else if (which === 1) {
    res = api('GET', '/api/v1/session', null,
      { expect: [200], ip, cookies: { census_session: data.cookie }, tags: { probe: 'session' } });
    expectStatus(res, 200);
  } else {
    res = api('POST', '/api/v1/pesel/check', { pesel: data.locked }, { expect: [200], ip, tags: { probe: 'pesel' } });
    expectStatus(res, 200);
  }
}

function expectStatus(res, status) {
  if (res.status !== status) unexpected.add(1, { status: String(res.status), code: problemCode(res) || '' });
}

export function login() {
  const i = MODE === 'saturate' ? __VU - 1 : exec.scenario.iterationInTest % pool.length;
  const p = pool[i];
  // 503 overloaded is the service's intended answer when the pool is full: counted apart
  // (saturate must see none; rate reports its share), any other status is unexpected.
  const res = api('POST', '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) }, {
    expect: [200, 503], ip: ipFor(23, exec.scenario.iterationInTest % 16000000), jar: new http.CookieJar(),
    tags: { probe: 'yes' },
  });
  if (res.status === 503 && problemCode(res) === 'overloaded') shed.add(1);
  else expectStatus(res, 200);
  if (res.status === 200) loginsOk.add(1);
}

export function floodBaseline() {
  const res = http.get(BASELINE_URL, { tags: { probe: 'yes' } });
  expectStatus(res, 200);
  sleep(envNum('THINK', 4) * (0.5 + Math.random()));
}

export function cheap(data) {
  const ip = ipFor(24, exec.scenario.iterationInTest % 16000000);
  let res;
  if (ENDPOINT === 'baseline') {
    res = http.get(BASELINE_URL, { tags: { probe: 'yes' } });
    expectStatus(res, 200);
  } else if (ENDPOINT === 'locked') {
    res = api('POST', '/api/v1/login', { pesel: data.locked, password: passwordFor(data.locked) },
      { expect: [423], ip, tags: { probe: 'yes' } });
    expectStatus(res, 423);
  } else if (ENDPOINT === 'session') {
    res = api('GET', '/api/v1/session', null,
      { expect: [200], ip, cookies: { census_session: data.cookie }, tags: { probe: 'yes' } });
    expectStatus(res, 200);
  } else if (ENDPOINT === 'pesel') {
    res = api('POST', '/api/v1/pesel/check', { pesel: pool[0].pesel },
      { expect: [200], ip, tags: { probe: 'yes' } });
    expectStatus(res, 200);
  } else {
    throw new Error(`unknown ENDPOINT ${ENDPOINT}`);
  }
  check(res, { 'status as expected': (r) => r.status === (ENDPOINT === 'locked' ? 423 : 200) });
}
