// Main journeys through the real service: define a password, log out, log in, a wrong
// password, the lock after five failures, keyboard-only use.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, assertClean, EXPECTED_HTTP_ERRORS, gotoHome, expectScreen, focusedId, captureScreen,
  expectAlert, person, strongPassword, defineViaApi, getMeta, submitAndWait, openLogin, warsaw,
  LOCK_BLOCK_SECONDS, TEST_TIMEOUT, BASE_URL, admin,
  vis,
} from './lib.mjs';

let browser;
let meta;
before(async () => { browser = await launch(); meta = await getMeta(); });
after(async () => { await browser?.close(); });

async function expectSessionScreen(page, sessionBody) {
  await expectScreen(page, 'screen-session');
  const end = new Date(sessionBody.windowEndsAt);
  const t = page.locator('#session-window-end');
  assert.equal(new Date(await t.getAttribute('datetime')).getTime(), end.getTime(), 'shown window end = windowEndsAt');
  assert.equal(await t.textContent(), warsaw(end, false), 'window end shown in Europe/Warsaw time');
  const days = Math.ceil((end.getTime() - Date.now()) / 86_400_000);
  assert.equal(await page.locator('#session-days-left').getAttribute('data-days'), String(days));
  assert.match(await page.locator('#session-days-left').textContent(), new RegExp(`\\b${days} (dni|dzień)\\b`));
  assert.equal(await page.getByRole('link', { name: /PRZEJDŹ DO FORMULARZA/ }).getAttribute('href'), meta.formUrl);
}

test('define a password, see the window, reload, log out, log in again', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('define-logout-login');
  const pw = strongPassword(p);
  const { context, page } = await openPage(browser);

  await gotoHome(page);
  await expectScreen(page, 'screen-method');
  assert.equal(await page.getAttribute('html', 'lang'), 'pl');
  const lg = page.getByRole('link', { name: /Login\.gov\.pl/ });
  assert.equal(await lg.getAttribute('href'), meta.loginGovUrl, 'login.gov.pl link targets meta.loginGovUrl');
  assert.match(await lg.textContent(), /Krajowy Węzeł Identyfikacji Elektronicznej/);
  assert.match(await lg.textContent(), /profil zaufany, bankowość elektroniczna/);
  assert.match(await page.locator('#screen-method').textContent(), /Pięciokrotne błędne zalogowanie zablokuje możliwość zalogowania na co najmniej 2 minuty/);
  assert.match(await page.locator('footer').textContent(), new RegExp(meta.helpline.replace(/\+/g, '\\+')));
  await page.locator('#rodo summary').click();
  assert.match(await page.locator('#rodo').textContent(), /Prezes Głównego Urzędu Statystycznego/);
  assert.match(await page.locator('#rodo').textContent(), /iod@stat\.gov\.pl/);
  await captureScreen(page, '01-method');
  await page.locator('#rodo summary').click();

  await page.getByRole('link', { name: /^PESEL/ }).click();
  await expectScreen(page, 'screen-login');
  assert.equal(await focusedId(page), 'login-title', 'focus moves to the new screen title');
  assert.match(await page.locator('#screen-login').textContent(), /Jeśli nie posiadasz jeszcze hasła.*użyj\s+opcji\s+ZDEFINIUJ HASŁO/s);
  for (const name of ['← WSTECZ', 'ZALOGUJ', 'ZDEFINIUJ HASŁO']) {
    assert.ok(await page.getByRole('button', { name, exact: true }).isVisible(), `button ${name}`);
  }
  await captureScreen(page, '02-login');

  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
  await page.getByRole('button', { name: 'ZDEFINIUJ HASŁO' }).click();
  await expectScreen(page, 'screen-define');
  assert.equal(await page.locator('#define-pesel').inputValue(), p.pesel, 'PESEL carried over');
  assert.equal(await page.locator('#define-password').inputValue(), pw, 'password carried over');
  assert.equal(await page.locator('#password-checklist li.met').count(), 4, 'all four rules met');
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden);
  await vis(page).getByLabel('Powtórz hasło').fill(pw);
  await captureScreen(page, '03-define');

  const resp = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(resp.status(), 201);
  const session = await resp.json();
  await expectSessionScreen(page, session);
  assert.match(await page.locator('#session-intro').textContent(), /Hasło zostało zdefiniowane/);
  assert.equal(await focusedId(page), 'session-title');
  assert.equal(await page.locator('#define-password').inputValue(), '', 'password not kept in the page');
  await captureScreen(page, '04-session');

  // GET /api/v1/session decides on load.
  await page.reload();
  await expectScreen(page, 'screen-session');
  await expectSessionScreen(page, session);

  const out = await submitAndWait(page, '/api/v1/logout', () => page.getByRole('button', { name: 'WYLOGUJ' }).click());
  assert.equal(out.status(), 204);
  await expectScreen(page, 'screen-method');
  await expectAlert(page, 'method', /Wylogowano/);
  await captureScreen(page, '05-logged-out');
  await page.reload();
  await expectScreen(page, 'screen-method');

  await page.getByRole('link', { name: /^PESEL/ }).click();
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
  const login = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
  assert.equal(login.status(), 200);
  const s2 = await login.json();
  assert.equal(s2.windowEndsAt, session.windowEndsAt, 'the window does not move on a second login');
  await expectSessionScreen(page, s2);
  assert.match(await page.locator('#session-intro').textContent(), /Logowanie przebiegło pomyślnie/);

  assertClean(page, EXPECTED_HTTP_ERRORS); // the 401 of GET /api/v1/session while logged out
  await context.close();
});

test('a wrong password is refused with a plain message, the right one works', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('wrong-password');
  const pw = strongPassword(p);
  await defineViaApi(p, pw);
  const { context, page } = await openPage(browser);
  await openLogin(page);
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  await vis(page).getByLabel('Hasło', { exact: true }).fill(pw + 'x');
  const r = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
  assert.equal(r.status(), 401);
  assert.equal((await r.json()).code, 'invalid_credentials');
  const text = await expectAlert(page, 'login', /Nieprawidłowy numer PESEL lub hasło/);
  assert.match(text, /ZDEFINIUJ HASŁO/);
  assert.match(text, /Pięciokrotne błędne zalogowanie/);
  await captureScreen(page, '06-login-wrong-password');

  await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
  const ok = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
  assert.equal(ok.status(), 200);
  await expectScreen(page, 'screen-session');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('five failures lock the PESEL; the page says until when (Europe/Warsaw)', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('lock');
  const pw = strongPassword(p);
  await defineViaApi(p, pw);
  const { context, page } = await openPage(browser);
  await openLogin(page);
  // The rule is stated before anyone fails.
  assert.match(await page.locator('#screen-login').textContent(),
    /Pięciokrotne błędne zalogowanie zablokuje możliwość zalogowania na co najmniej 2 minuty, każde kolejne błędne logowanie wydłuży czas blokady/);
  await vis(page).getByLabel('Numer PESEL').fill(p.pesel);
  const max = meta.lockout?.maxFailures ?? meta.maxFailures;
  assert.equal(max, 5);
  for (let i = 1; i < max; i++) {
    await vis(page).getByLabel('Hasło', { exact: true }).fill(`Zle-haslo-${i}A`);
    const r = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
    assert.equal(r.status(), 401, `attempt ${i}`);
    await expectAlert(page, 'login', /Nieprawidłowy numer PESEL lub hasło/);
  }
  await vis(page).getByLabel('Hasło', { exact: true }).fill('Zle-haslo-5A');
  const before5 = Date.now();
  const r5 = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
  assert.equal(r5.status(), 423, 'the fifth failure is answered 423');
  const body = await r5.json();
  assert.equal(body.code, 'account_locked');
  assert.ok(body.lockedUntil, '423 body has lockedUntil');
  const until = new Date(body.lockedUntil);
  const ahead = (until.getTime() - before5) / 1000;
  assert.ok(ahead > LOCK_BLOCK_SECONDS - 10 && ahead < LOCK_BLOCK_SECONDS + 10, `lock ends ~${LOCK_BLOCK_SECONDS}s ahead (got ${ahead}s)`);

  const text = await expectAlert(page, 'login', /Logowanie na ten numer PESEL jest zablokowane/);
  const t = page.locator('#locked-until');
  assert.equal(new Date(await t.getAttribute('datetime')).getTime(), until.getTime(), 'shown lock end = lockedUntil');
  assert.equal(await t.textContent(), warsaw(until, true), 'lock end shown in Europe/Warsaw time');
  assert.ok(text.includes(warsaw(until, true)));
  assert.match(text, /czasu polskiego/);
  assert.ok(text.includes(meta.helpline), 'helpline offered');
  await captureScreen(page, '07-login-locked');

  // While locked, even the right password is refused and the lock does not move.
  await vis(page).getByLabel('Hasło', { exact: true }).fill(pw);
  const r6 = await submitAndWait(page, '/api/v1/login', () => page.getByRole('button', { name: 'ZALOGUJ' }).click());
  assert.equal(r6.status(), 423);
  assert.equal(new Date((await r6.json()).lockedUntil).getTime(), until.getTime(), 'attempts during a lock do not lengthen it');
  await expectAlert(page, 'login', /zablokowane/);
  assert.equal(await page.locator('#locked-until').textContent(), warsaw(until, true));

  const acct = await admin('GET', `/admin/v1/accounts/${p.pesel}`);
  assert.equal(acct.status, 200);
  assert.equal(new Date(acct.body.lockout.lockedUntil).getTime(), until.getTime(), 'admin view agrees on the lock end');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

// Presses Tab until `selector` has focus (at most `max` presses), asserting focus is visible.
async function tabTo(page, selector, max = 20) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const hit = await page.evaluate((sel) => document.activeElement?.matches(sel), selector);
    if (hit) {
      const style = await page.evaluate(() => {
        const cs = getComputedStyle(document.activeElement);
        return { outline: cs.outlineStyle, width: cs.outlineWidth, shadow: cs.boxShadow };
      });
      assert.ok(style.outline !== 'none' && style.width !== '0px', `focus is visible on ${selector}: ${JSON.stringify(style)}`);
      return;
    }
  }
  assert.fail(`${selector} not reached with Tab`);
}

test('keyboard only: choose PESEL, define the password, log out', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('keyboard');
  const pw = strongPassword(p);
  const { context, page } = await openPage(browser);
  await gotoHome(page);

  await page.keyboard.press('Tab');
  assert.equal(await focusedId(page), 'skip-link', 'the first Tab reaches the skip link');
  await tabTo(page, '#choice-pesel');
  await page.keyboard.press('Enter');
  await expectScreen(page, 'screen-login');
  await tabTo(page, '#login-pesel');
  await page.keyboard.type(p.pesel);
  await tabTo(page, '#login-password');
  await page.keyboard.type(pw);
  await tabTo(page, '#go-define');
  await page.keyboard.press('Enter');
  await expectScreen(page, 'screen-define');
  await tabTo(page, '#define-maiden');
  await page.keyboard.type(p.maiden);
  await tabTo(page, '#define-password-repeat');
  await page.keyboard.type(pw);
  const resp = await submitAndWait(page, '/api/v1/password', () => page.keyboard.press('Enter'));
  assert.equal(resp.status(), 201);
  await expectScreen(page, 'screen-session');
  await tabTo(page, '#logout-button');
  const out = await submitAndWait(page, '/api/v1/logout', () => page.keyboard.press('Enter'));
  assert.equal(out.status(), 204);
  await expectScreen(page, 'screen-method');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('the page is served with the CSP and loads only from its own origin', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page } = await openPage(browser);
  const resp = await page.goto(BASE_URL + '/');
  const csp = resp.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  await expectScreen(page, 'screen-method');
  const inline = await page.evaluate(() => ({
    scripts: [...document.scripts].filter((s) => !s.src).length,
    styles: document.querySelectorAll('style, [style]').length,
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  }));
  assert.deepEqual(inline, { scripts: 0, styles: 0, handlers: 0 });
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});
