// Page-level messages for refusals that the test service cannot easily be put into
// (window closed, census not open/closed, overloaded, rate limited, store down, no network).
// The page is the real one from the service; only the answer to POST /api/v1/login is
// replaced in the browser by a problem+json body shaped as API.md describes. These tests
// check the page's wording, focus and accessibility, not the service.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, assertClean, EXPECTED_HTTP_ERRORS, expectAlert, captureScreen, openLogin, person,
  getMeta, TEST_TIMEOUT,
  vis,
} from './lib.mjs';

let browser;
let meta;
before(async () => { browser = await launch(); meta = await getMeta(); });
after(async () => { await browser?.close(); });

function problem(status, code, extra = {}, headers = {}) {
  return {
    status,
    headers: { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...headers },
    body: JSON.stringify({ type: 'about:blank', title: code, status, code, detail: `API detail for ${code}`, ...extra }),
  };
}

const CASES = [
  { name: 'survey-window-closed', resp: problem(403, 'survey_window_closed'),
    expect: [/Czas na samospis internetowy minął/, /przez telefon/, 'HELPLINE'] },
  { name: 'census-not-open', resp: problem(403, 'census_not_open'),
    expect: [/Spis jeszcze się nie rozpoczął/] },
  { name: 'census-closed', resp: problem(403, 'census_closed'),
    expect: [/Spis został zakończony/, /nie są już możliwe/] },
  { name: 'overloaded', resp: problem(503, 'overloaded', { retryAfterSeconds: 7 }, { 'Retry-After': '7' }),
    expect: [/chwilowo przeciążony/, /Spróbuj ponownie za 7 sekund\./], shot: true },
  { name: 'overloaded-header-only', resp: problem(503, 'overloaded', {}, { 'Retry-After': '3' }),
    expect: [/Spróbuj ponownie za 3 sekundy\./] },
  { name: 'rate-limited', resp: problem(429, 'rate_limited', { retryAfterSeconds: 31 }, { 'Retry-After': '31' }),
    expect: [/Zbyt wiele prób/, /Spróbuj ponownie za 31 sekund\./] },
  { name: 'store-unavailable', resp: problem(503, 'store_unavailable', { retryAfterSeconds: 1 }, { 'Retry-After': '1' }),
    expect: [/chwilowo niedostępne/, /Spróbuj ponownie za 1 sekundę\./, 'HELPLINE'] },
  { name: 'unknown-code', resp: problem(500, 'something_new'),
    expect: [/API detail for something_new/, /something_new/] },
];

test('service refusals are explained in plain Polish, with focus on the message (simulated API answers)', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('define-logout-login');
  const { context, page } = await openPage(browser);
  await openLogin(page);
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill('Dowolne-Haslo1');
  let current = null;
  await page.route('**/api/v1/login', (route) => route.fulfill(current.resp));

  for (const c of CASES) {
    current = c;
    await page.evaluate(() => { document.getElementById('login-alert').hidden = true; });
    await page.getByRole('button', { name: 'ZALOGUJ' }).click();
    await page.locator('#login-alert').waitFor({ state: 'visible' });
    const text = await expectAlert(page, 'login', c.expect[0]);
    for (const e of c.expect.slice(1)) {
      if (e === 'HELPLINE') assert.ok(text.includes(meta.helpline), `${c.name}: helpline shown`);
      else assert.match(text, e, c.name);
    }
    if (c.name !== 'unknown-code') assert.ok(!text.includes('API detail'), `${c.name}: own wording, not the API's detail`);
    if (c.name === 'survey-window-closed' || c.name === 'overloaded') await captureScreen(page, `18-login-${c.name}`);
  }

  // No network at all.
  await page.unroute('**/api/v1/login');
  await page.route('**/api/v1/login', (route) => route.abort('connectionrefused'));
  await page.getByRole('button', { name: 'ZALOGUJ' }).click();
  await page.waitForFunction(() => /Brak połączenia/.test(document.getElementById('login-alert').textContent));
  await expectAlert(page, 'login', /Brak połączenia z serwerem/);

  assertClean(page, [...EXPECTED_HTTP_ERRORS, /status of 500/, /ERR_CONNECTION_REFUSED/]);
  await context.close();
});
