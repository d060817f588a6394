// The steady load that tests/faults/run.sh injects its faults into: password
// definitions (each person once), correct logins and wrong passwords, spread
// round-robin over the replicas in BASE_URLS like a load balancer that retries a
// refused connection once on the next replica. Every request is written as one JSON
// line to the console (run.sh sends it to a file) so that run.sh can judge each
// answer against the fault going on when it was sent. k6's own checks are not the
// verdict here: run.sh is.
import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { people, passwordFor, wrongPasswordFor, syntheticPesel, ipFor, problemCode, envNum } from '../load/lib.js';

const URLS = (__ENV.BASE_URLS || 'http://127.0.0.1:8080').split(',').map((u) => u.replace(/\/$/, ''));
const RATE = envNum('RATE', 30);
const DURATION = __ENV.DURATION || '60s';
// People whose passwords setup() defines, for the correct logins; the rest are
// defined under load, each once. A prime, so that each person's logins go round
// the replicas and reach each about every 5 s, as a person retrying would.
const LOGIN_POOL = envNum('LOGIN_POOL', 61);

export const options = {
  scenarios: {
    faults: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 40,
      maxVUs: 120,
    },
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
  // Verdicts come from run.sh; this only keeps k6 from failing on 503s.
  thresholds: {},
};

const loginPool = new SharedArray('loginPool', () => people.slice(0, LOGIN_POOL));
const definePool = new SharedArray('definePool', () => people.slice(LOGIN_POOL));

function post(i, path, body, tags) {
  let target = i % URLS.length;
  for (let attempt = 0; ; attempt++) {
    const t0 = Date.now();
    const res = http.post(URLS[target] + path, JSON.stringify(body), {
      // No Origin: each replica has its own public_origin, and the check applies only
      // to an Origin that is sent.
      headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': ipFor(198, i) },
      tags: { name: path, kind: tags.kind },
      timeout: '15s',
      responseCallback: http.expectedStatuses(200, 201, 401, 409),
    });
    const t1 = Date.now();
    console.log(JSON.stringify({
      t0, t1, i, kind: tags.kind, pesel: tags.pesel, replica: target, attempt,
      status: res.status, code: res.status >= 400 ? problemCode(res) : undefined,
      retryAfter: res.headers['Retry-After'],
    }));
    // A refused or reset connection (status 0): the balancer tries the next replica.
    if (res.status !== 0 || attempt >= 1) return res;
    target = (target + 1) % URLS.length;
  }
}

export function setup() {
  // The login pool gets its passwords before the faults start (retrying a busy replica).
  loginPool.forEach((p, n) => {
    for (let k = 0; k < 20; k++) {
      const r = http.post(URLS[0] + '/api/v1/password',
        JSON.stringify({ pesel: p.pesel, motherMaidenName: p.name, password: passwordFor(p.pesel), passwordRepeat: passwordFor(p.pesel) }),
        { headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': ipFor(203, n) } });
      if (r.status === 201 || r.status === 409) break;
      if (k === 19) throw new Error(`setup: defining a password answered ${r.status}`);
    }
  });
}

export default function () {
  const i = exec.scenario.iterationInTest;
  const slot = i % 5;
  if (slot < 2) {
    // Each person of the define pool once: 2 of every 5 iterations.
    const p = definePool[(Math.floor(i / 5) * 2 + slot) % definePool.length];
    post(i, '/api/v1/password',
      { pesel: p.pesel, motherMaidenName: p.name, password: passwordFor(p.pesel), passwordRepeat: passwordFor(p.pesel) },
      { kind: 'define', pesel: p.pesel });
  } else if (slot < 4) {
    const p = loginPool[i % loginPool.length];
    post(i, '/api/v1/login', { pesel: p.pesel, password: passwordFor(p.pesel) }, { kind: 'login', pesel: p.pesel });
  } else {
    // A wrong password for a PESEL never used before: 401, never a lock.
    const pesel = syntheticPesel(i, 7);
    post(i, '/api/v1/login', { pesel, password: wrongPasswordFor(pesel) }, { kind: 'wrong', pesel });
  }
}
