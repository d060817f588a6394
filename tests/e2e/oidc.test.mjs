// The hand-off to the census form, as the form will do it: a relying party built on the
// certified openid-client library (example-rp.mjs) on 127.0.0.1, the provider and its
// login page on localhost (another site), real Chromium in between.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, BASE_URL, TEST_TIMEOUT, DESKTOP, expectScreen, vis, person, strongPassword, checkAxe,
  EXPECTED_HTTP_ERRORS,
} from './lib.mjs';
import { startRp } from './example-rp.mjs';

const RP_PORT = Number(process.env.E2E_RP_PORT);
const CLIENT_NAME = 'Formularz spisowy (e2e)';

let browser;
let rp;
before(async () => {
  assert.ok(RP_PORT, 'E2E_RP_PORT is not set: run these tests through tests/e2e/run.sh');
  browser = await launch();
  rp = await startRp({
    issuer: BASE_URL,
    clientId: process.env.E2E_RP_CLIENT_ID,
    clientSecret: process.env.E2E_RP_CLIENT_SECRET,
    port: RP_PORT,
    scope: 'openid census',
  });
});
after(async () => { await browser?.close(); await rp?.close(); });

// A context that may talk to the provider and the RP (and nothing else).
async function openContext() {
  const context = await browser.newContext({ viewport: DESKTOP, locale: 'pl-PL', timezoneId: 'America/New_York' });
  context.setDefaultTimeout(15_000);
  const allowed = new Set([new URL(BASE_URL).origin, rp.url]);
  const problems = [];
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith('data:') || allowed.has(new URL(u).origin)) return route.continue();
    problems.push(`request to another host: ${u}`);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    if (t.startsWith('Failed to load resource') && EXPECTED_HTTP_ERRORS.some((re) => re.test(t))) return;
    problems.push(`console error: ${t}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, problems };
}

async function claimsOf(page) {
  await page.locator('#claims').waitFor();
  return {
    claims: JSON.parse(await page.locator('#claims').textContent()),
    userinfo: JSON.parse(await page.locator('#userinfo').textContent()),
  };
}

async function expectClientBanner(page) {
  const banner = page.locator('#oidc-client');
  await banner.waitFor({ state: 'visible' });
  assert.match(await banner.textContent(), new RegExp(CLIENT_NAME.replace(/[()]/g, '\\$&')));
}

test('form → login page → password definition → form with verified claims; returning; logout; login again',
  { timeout: TEST_TIMEOUT }, async () => {
    const p = person('oidc-handoff');
    const pw = strongPassword(p);
    const { context, page, problems } = await openContext();
    const providerPages = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame() && new URL(f.url()).origin === new URL(BASE_URL).origin) providerPages.push(new URL(f.url()).pathname);
    });

    // 1. The form sends the person to the provider (cross-site); no session yet: the login page.
    await page.goto(`${rp.url}/`);
    await page.locator('#login').click();
    await page.waitForURL((u) => u.origin === new URL(BASE_URL).origin && u.searchParams.has('authz'));
    await expectScreen(page, 'screen-method');
    await expectClientBanner(page);
    await checkAxe(page, 'oidc method screen');

    // 2. Every screen names the service: PESEL, then password definition.
    await page.getByRole('link', { name: /^PESEL/ }).click();
    await expectScreen(page, 'screen-login');
    await expectClientBanner(page);
    await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
    await page.getByRole('button', { name: 'ZDEFINIUJ HASŁO' }).click();
    await expectScreen(page, 'screen-define');
    await expectClientBanner(page);
    await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden);
    await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
    await vis(page).getByLabel('Powtórz hasło').fill(pw);
    await page.getByRole('button', { name: /DALEJ/ }).click();

    // 3. Back at the form, which verified the ID token (ES256, JWKS) with openid-client.
    await page.waitForURL((u) => u.origin === rp.url && u.pathname === '/');
    const first = await claimsOf(page);
    assert.equal(first.claims.iss, BASE_URL);
    assert.equal(first.claims.aud, process.env.E2E_RP_CLIENT_ID);
    assert.equal(first.claims.pesel, p.pesel, 'scope census carries the PESEL');
    assert.equal(first.claims.acr, 'urn:census:acr:password');
    assert.ok(first.claims.sub && first.claims.sub !== p.pesel, 'a pairwise pseudonym, not the PESEL');
    assert.ok(first.claims.exp <= first.claims.census_window_ends_at, 'no token past the survey window');
    assert.equal(first.userinfo.sub, first.claims.sub);
    assert.equal(first.userinfo.pesel, p.pesel);

    // 4. Returning while the session lives: the provider's Lax cookie survives the
    // cross-site navigation, so no login page this time.
    providerPages.length = 0;
    await page.locator('#login').click();
    await page.waitForURL((u) => u.origin === rp.url && u.pathname === '/');
    const again = await claimsOf(page);
    assert.equal(again.claims.sub, first.claims.sub, 'the same person, the same sub');
    assert.ok(!providerPages.includes('/'), `no login page on return: ${providerPages}`);

    // 5. Logout through end session: back at the form, the provider's session gone.
    await page.locator('#logout').click();
    await page.waitForURL((u) => u.origin === rp.url);
    await page.locator('#logged-out').waitFor();
    const session = await context.request.get(`${BASE_URL}/api/v1/session`);
    assert.equal(session.status(), 401, 'the session ended at the provider');

    // 6. A returning login with the password: the page again, then the form.
    await page.locator('#login').click();
    await page.waitForURL((u) => u.origin === new URL(BASE_URL).origin && u.searchParams.has('authz'));
    await expectClientBanner(page);
    await page.getByRole('link', { name: /^PESEL/ }).click();
    await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
    await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
    await page.getByRole('button', { name: 'ZALOGUJ' }).click();
    await page.waitForURL((u) => u.origin === rp.url && u.pathname === '/');
    const third = await claimsOf(page);
    assert.equal(third.claims.sub, first.claims.sub);
    assert.deepEqual(problems, [], 'no console errors, no other hosts');
    await context.close();
  });

test('a tampered ID token is refused by openid-client', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('oidc-handoff');
  const { context, page } = await openContext();
  // Log in on the provider first (the password was defined by the test above).
  await page.goto(`${rp.url}/login`);
  await page.waitForURL((u) => u.searchParams.has('authz'));
  await page.getByRole('link', { name: /^PESEL/ }).click();
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill(strongPassword(p));
  await page.getByRole('button', { name: 'ZALOGUJ' }).click();
  await page.locator('#claims').waitFor();
  // The RP now changes `sub` in the token response before the library checks it.
  await page.goto(`${rp.url}/login?tamper=1`);
  await page.locator('#rp-error').waitFor();
  assert.match(await page.locator('#rp-error').textContent(), /signature/i);
  await context.close();
});

test('an unregistered redirect_uri gets an error page, never a redirect', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page } = await openContext();
  const url = new URL(`${BASE_URL}/oidc/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: process.env.E2E_RP_CLIENT_ID, redirect_uri: `${rp.url}/callbackX`,
    scope: 'openid', state: 's', nonce: 'n', code_challenge: 'a'.repeat(43), code_challenge_method: 'S256',
  })) url.searchParams.set(k, v);
  const res = await page.goto(url.href);
  assert.equal(res.status(), 400);
  assert.equal(new URL(page.url()).origin, new URL(BASE_URL).origin, 'stayed at the provider');
  assert.equal(await page.locator('#oidc-error').getAttribute('data-reason'), 'redirect_uri');
  await context.close();
});

test('survey window closed: the person goes back to the form, which learns access_denied', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('oidc-handoff');
  const { context, page } = await openContext();
  // The service's answer for a person whose 14 days are over (simulated: the window is real time).
  await page.route(`${BASE_URL}/api/v1/login`, (route) => route.fulfill({
    status: 403, contentType: 'application/problem+json',
    body: JSON.stringify({ type: 'about:blank', title: 'Forbidden', status: 403, code: 'survey_window_closed', detail: '' }),
  }));
  await page.goto(`${rp.url}/login`);
  await page.waitForURL((u) => u.searchParams.has('authz'));
  await page.getByRole('link', { name: /^PESEL/ }).click();
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill(strongPassword(p));
  await page.getByRole('button', { name: 'ZALOGUJ' }).click();
  const back = page.locator('#oidc-return');
  await back.waitFor();
  assert.match(await page.locator('#login-alert').textContent(), /Czas na samospis internetowy minął/);
  await back.click();
  await page.waitForURL((u) => u.origin === rp.url && u.pathname === '/callback');
  assert.equal(new URL(page.url()).searchParams.get('error'), 'access_denied');
  await page.locator('#rp-error').waitFor();
  await context.close();
});
