// login.gov.pl (the national node, issue #13) in Chromium against the test IdP
// (tests/saml/idp.py): the card starts the node login, the IdP answers at once, the person
// is back on the page logged in; when someone else had defined a password for the PESEL,
// the page offers the reclaim, which ends the impostor's session and password.
// Run by `tests/e2e/run.sh --national-node` (census-login built with --features national-node).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, assertClean, EXPECTED_HTTP_ERRORS, gotoHome, expectScreen, captureScreen, getMeta,
  submitAndWait, expectFieldError, person, strongPassword, vis, TEST_TIMEOUT, BASE_URL,
} from './lib.mjs';

const IDP_URL = process.env.E2E_IDP_URL;
if (!IDP_URL) throw new Error('E2E_IDP_URL is not set: run this file through tests/e2e/run.sh --national-node');
const NODE_ACR = 'urn:census:acr:login.gov.pl';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// The behaviour of the test IdP for the next logins (unset keys: its defaults).
async function idpControl(body) {
  const r = await fetch(`${IDP_URL}/control`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `IdP /control answered ${r.status} ${await r.text()}`);
}

// The impostor's client: its own cookie jar (the cookies are Secure here, see run.sh, so
// they are carried by hand rather than by a jar that would keep them for HTTPS only).
function apiClient() {
  const jar = new Map();
  return async (method, path, body) => {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (jar.size) headers.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(BASE_URL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    const text = await r.text();
    return { status: r.status, text, body: text && text.startsWith('{') ? JSON.parse(text) : null };
  };
}

async function login(pesel, password) {
  return apiClient()('POST', '/api/v1/login', { pesel, password });
}

// Clicks the login.gov.pl card and waits until the page is back from the IdP on `screen`.
async function nodeLogin(page, screen) {
  await gotoHome(page);
  await expectScreen(page, 'screen-method');
  const card = page.locator('#choice-logingov');
  assert.equal(await card.getAttribute('href'), '/saml/login', 'the card starts the node login here');
  const seen = [];
  // Navigation requests, redirect hops included (the artifact binding reaches the IdP only
  // through redirects, which fire no framenavigated).
  page.on('request', (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) seen.push(r.url()); });
  await card.click();
  await page.locator(`#${screen}`).waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(new URL(page.url()).origin, new URL(BASE_URL).origin, 'back on the census-login page');
  const hops = seen.map((u) => new URL(u).pathname).join(' -> ');
  assert.ok(seen.some((u) => u.startsWith(IDP_URL + '/sso/redirect?SAMLRequest=')), `the browser went through the IdP: ${hops}`);
  assert.ok(seen.some((u) => u.startsWith(new URL(BASE_URL).origin + '/saml/acs')), `and back through the ACS: ${hops}`);
  await expectScreen(page, screen);
  return page.evaluate(async () => (await fetch('/api/v1/session', { cache: 'no-store' })).json());
}

test('the meta endpoint announces the national node', { timeout: TEST_TIMEOUT }, async () => {
  const meta = await getMeta();
  assert.equal(meta.nationalNode, true);
  assert.equal(meta.loginGovUrl, '/saml/login');
});

test('card -> IdP (POST) -> logged in -> reclaim: the impostor\'s session and password are gone', { timeout: TEST_TIMEOUT }, async () => {
  // This suite has its own service: the demo PESEL (the first registry row) is free here.
  const p = person('define-logout-login');
  const impostorPw = 'Impostor-2021x';
  const ownPw = strongPassword(p);

  // The impostor knew the PESEL and the mother's maiden name and defined a password.
  const impostor = apiClient();
  {
    const d = await impostor('POST', '/api/v1/password',
      { pesel: p.pesel, motherMaidenName: p.maiden, password: impostorPw, passwordRepeat: impostorPw });
    assert.equal(d.status, 201, `the impostor's definition answered ${d.status} ${d.text}`);
    assert.equal((await impostor('GET', '/api/v1/session')).status, 200, 'the impostor is logged in');

    await idpControl({ pesel: p.pesel, binding: 'post' });
    const { context, page } = await openPage(browser, { allowOrigins: [IDP_URL] });
    const session = await nodeLogin(page, 'screen-reclaim');
    assert.equal(session.acr, NODE_ACR);
    assert.equal(session.passwordDefined, true);
    assert.ok(new Date(session.reclaimUntil).getTime() > Date.now(), 'reclaimUntil is ahead');
    assert.match(await page.locator('#reclaim-title').textContent(),
      /^Ktoś inny zdefiniował hasło dla Twojego numeru PESEL\? Ustaw własne\.$/);
    assert.equal(await page.locator('#reclaim-until').getAttribute('datetime'), new Date(session.reclaimUntil).toISOString());
    await captureScreen(page, 'national-01-reclaim');

    // The page's own checks first: nothing is sent while the repeat differs.
    await vis(page).getByLabel('Nowe hasło', { exact: true }).fill(ownPw);
    assert.equal(await page.locator('#reclaim-checklist li.met').count(), 4, 'all four rules met');
    await vis(page).getByLabel('Powtórz nowe hasło').fill(ownPw + 'x');
    await page.getByRole('button', { name: 'USTAW HASŁO' }).click();
    await expectFieldError(page, 'reclaim-password-repeat', /różni się od hasła/);
    await captureScreen(page, 'national-02-reclaim-error');

    await vis(page).getByLabel('Powtórz nowe hasło').fill(ownPw);
    const resp = await submitAndWait(page, '/api/v1/account/reclaim', () =>
      page.getByRole('button', { name: 'USTAW HASŁO' }).click());
    assert.equal(resp.status(), 200, `reclaim answered ${resp.status()} ${await resp.text()}`);
    await expectScreen(page, 'screen-session');
    assert.match(await page.locator('#session-intro').textContent(), /Ustawiono nowe hasło/);
    assert.equal(await page.locator('#reclaim-offer').isHidden(), true, 'no second offer after the reclaim');
    await captureScreen(page, 'national-03-reclaimed');

    // The impostor's session is gone, and so is the impostor's password.
    const s = await impostor('GET', '/api/v1/session');
    assert.equal(s.status, 401, `the impostor's session answered ${s.status}`);
    const old = await login(p.pesel, impostorPw);
    assert.equal(old.status, 401);
    assert.equal(old.body && old.body.code, 'invalid_credentials');
    const own = await login(p.pesel, ownPw);
    assert.equal(own.status, 200, `the new password logs in: ${own.status} ${JSON.stringify(own.body)}`);
    // The person's own node session survives the reclaim.
    const mine = await page.evaluate(async () => (await fetch('/api/v1/session', { cache: 'no-store' })).status);
    assert.equal(mine, 200);
    assertClean(page, EXPECTED_HTTP_ERRORS);
    await context.close();
  }
});

test('card -> IdP (Artifact, encrypted assertion), no password defined: logged in, no reclaim offered', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('wrong-password');
  await idpControl({ pesel: p.pesel, binding: 'artifact', encrypt: true });
  const { context, page } = await openPage(browser, { allowOrigins: [IDP_URL] });
  try {
    const session = await nodeLogin(page, 'screen-session');
    assert.equal(session.acr, NODE_ACR);
    assert.equal(session.passwordDefined, false);
    assert.match(await page.locator('#session-intro').textContent(), /Zalogowano przez login\.gov\.pl\./);
    assert.equal(await page.locator('#reclaim-offer').isHidden(), true);
    // The reclaim screen cannot be reached by its address either.
    await page.goto(BASE_URL + '/#wlasne-haslo');
    await expectScreen(page, 'screen-session');
    await captureScreen(page, 'national-04-session');
    assertClean(page, EXPECTED_HTTP_ERRORS);
  } finally {
    await context.close();
    await idpControl({});
  }
});
