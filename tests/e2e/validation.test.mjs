// Validation and refusals through the real service: bad PESELs (caught in the page before
// sending), a weak password (live checklist, page checks, then the server's violations),
// identity not verified, tolerant maiden name, password already defined, reserved PESEL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, assertClean, EXPECTED_HTTP_ERRORS, expectScreen, focusedId, captureScreen, expectAlert,
  expectFieldError, expectNoFieldError, person, sparePerson, reservedPerson, strongPassword, defineViaApi, getMeta,
  submitAndWait, openLogin, countApiPosts, withChecksum, breakChecksum, TEST_TIMEOUT,
  vis,
} from './lib.mjs';

let browser;
let meta;
before(async () => { browser = await launch(); meta = await getMeta(); });
after(async () => { await browser?.close(); });

async function openDefine(page, pesel = '', password = '') {
  await openLogin(page);
  if (pesel) await vis(page).getByLabel('Numer PESEL').fill(pesel);
  if (password) await vis(page).getByLabel('Hasło', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'ZDEFINIUJ HASŁO' }).click();
  await expectScreen(page, 'screen-define');
}

test('a bad PESEL is explained next to the field and nothing is sent', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page } = await openPage(browser);
  const posts = countApiPosts(page);
  await openLogin(page);
  const pesel = vis(page).getByLabel('Numer PESEL');
  const password = vis(page).getByLabel('Hasło', { exact: true });

  // Format: checked on submit, focus on the field.
  await pesel.fill('1234567');
  await password.fill('Cokolwiek1');
  await page.getByRole('button', { name: 'ZALOGUJ' }).click();
  await expectFieldError(page, 'login-pesel', /11 cyfr/);
  assert.equal(await focusedId(page), 'login-pesel', 'focus moves to the first field with an error');
  await page.waitForFunction(() => /błąd/.test(document.getElementById('status').textContent));
  await captureScreen(page, '08-login-invalid-pesel');

  // Checksum: the example from the PESEL page, checked inline as soon as 11 digits are typed.
  await pesel.fill('');
  await pesel.pressSequentially('04051401458');
  await expectFieldError(page, 'login-pesel', /cyfra kontrolna/);
  assert.equal(await focusedId(page), 'login-pesel', 'the inline check does not move focus');
  // And when leaving the field for the next one.
  await pesel.fill('0405140145');
  await expectNoFieldError(page, 'login-pesel');
  await password.focus();
  await expectFieldError(page, 'login-pesel', /11 cyfr/);

  // Date: a correct checksum on a 30 February.
  const badDate = withChecksum('9902300123');
  await pesel.fill(badDate);
  await page.getByRole('button', { name: 'ZALOGUJ' }).click();
  await expectFieldError(page, 'login-pesel', /daty urodzenia/);

  // Fixing it clears the message while typing.
  await pesel.fill(person('define-logout-login').pesel);
  await expectNoFieldError(page, 'login-pesel');

  // Same on the define screen.
  await pesel.fill(breakChecksum(person('weak-password').pesel));
  await page.getByRole('button', { name: 'ZDEFINIUJ HASŁO' }).click();
  await expectScreen(page, 'screen-define');
  await expectFieldError(page, 'define-pesel', /cyfra kontrolna/);
  await vis(page).getByLabel('Nazwisko rodowe matki').fill('Kowalska');
  await vis(page).getByLabel('Powtórz hasło').fill('Cokolwiek1');
  await page.getByRole('button', { name: /DALEJ/ }).click();
  await expectFieldError(page, 'define-pesel', /cyfra kontrolna/);
  assert.equal(await focusedId(page), 'define-pesel');
  await captureScreen(page, '09-define-invalid-pesel');

  assert.deepEqual(posts, [], 'no API request is sent while the PESEL is invalid');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('a weak password: live checklist, messages before sending, then the server\'s violations', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('weak-password');
  const { context, page } = await openPage(browser);
  const posts = countApiPosts(page);
  await openDefine(page, p.pesel);
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden);
  const pw = vis(page).getByLabel('Hasło', { exact: true });
  const state = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#password-checklist li')]
    .map((li) => [li.dataset.rule, li.className])));

  assert.deepEqual(await state(), { length: 'unmet', upper: 'unmet', digit: 'unmet', ascii: 'unmet' });
  await pw.fill('abc');
  assert.deepEqual(await state(), { length: 'unmet', upper: 'unmet', digit: 'unmet', ascii: 'met' });
  await pw.fill('Abcdefgh');
  assert.deepEqual(await state(), { length: 'met', upper: 'met', digit: 'unmet', ascii: 'met' });
  await pw.fill('Zażółć123');
  assert.deepEqual(await state(), { length: 'met', upper: 'met', digit: 'met', ascii: 'unmet' });
  assert.match(await page.locator('#password-checklist').textContent(), /minimum 8 znaków.*wielka litera.*cyfra.*bez polskich znaków/s);
  const checklistText = await page.locator('#password-checklist li[data-rule="ascii"]').textContent();
  assert.match(checklistText, /niespełniony/, 'state is spelled out for screen readers');

  // Submitting: every problem listed next to its field, nothing sent.
  await pw.fill('abc');
  await vis(page).getByLabel('Powtórz hasło').fill('abd');
  await page.getByRole('button', { name: /DALEJ/ }).click();
  const err = await expectFieldError(page, 'define-password', /co najmniej 8 znaków/);
  assert.match(err, /wielką literę/);
  assert.match(err, /cyfrę/);
  await expectFieldError(page, 'define-password-repeat', /różni się/);
  assert.equal(await focusedId(page), 'define-password');
  assert.equal(await page.locator('#password-checklist li.failed').count(), 3, 'unmet rules turn red after submitting');
  assert.deepEqual(posts, [], 'no request for a password the page can already reject');
  await captureScreen(page, '10-define-weak-password');

  // A password only the server can reject (on its list of common passwords): its 422
  // violation is shown next to the password field.
  await pw.fill('Polska123');
  await vis(page).getByLabel('Powtórz hasło').fill('Polska123');
  assert.equal(await page.locator('#password-checklist li.met').count(), 4);
  const r = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(r.status(), 422);
  const body = await r.json();
  assert.equal(body.code, 'validation_failed');
  assert.ok(body.violations.some((v) => v.field === 'password' && v.code === 'password_too_common'), JSON.stringify(body.violations));
  await expectFieldError(page, 'define-password', /zbyt popularne/);
  await expectNoFieldError(page, 'define-pesel');
  assert.equal(await focusedId(page), 'define-password');
  await captureScreen(page, '11-define-server-violation');

  // Then a good one goes through.
  const good = strongPassword(p);
  await pw.fill(good);
  await vis(page).getByLabel('Powtórz hasło').fill(good);
  const ok = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(ok.status(), 201);
  await expectScreen(page, 'screen-session');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('a wrong mother\'s maiden name: identity not verified', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('identity-not-verified');
  const pw = strongPassword(p);
  const { context, page } = await openPage(browser);
  await openDefine(page, p.pesel, pw);
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden === 'Zawadzka' ? 'Nowak' : 'Zawadzka');
  await vis(page).getByLabel('Powtórz hasło').fill(pw);
  const r = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(r.status(), 401);
  assert.equal((await r.json()).code, 'identity_not_verified');
  const text = await expectAlert(page, 'define', /Nie udało się potwierdzić tożsamości/);
  assert.match(text, /nazwisk(o|a) rodowe(go)? matki/);
  await captureScreen(page, '12-define-identity-not-verified');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('the maiden name is compared without case, diacritics or hyphens', { timeout: TEST_TIMEOUT }, async () => {
  // Someone whose mother's maiden name has a Polish letter (ideally ł, which does not decompose).
  const p = sparePerson((x) => /ł/i.test(x.maiden)) || sparePerson((x) => /[ąćęńóśźż]/i.test(x.maiden));
  assert.ok(p, 'the demo registry has no maiden name with Polish letters');
  const pw = strongPassword(p);
  const folded = p.maiden.toLowerCase().replace(/ł/g, 'l').normalize('NFD').replace(/\p{M}/gu, '').replace(/[-']/g, ' ');
  assert.notEqual(folded, p.maiden, `pick a person whose name changes when folded (${p.maiden})`);
  const { context, page } = await openPage(browser);
  await openDefine(page, p.pesel, pw);
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(folded.toUpperCase());
  await vis(page).getByLabel('Powtórz hasło').fill(pw);
  const r = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(r.status(), 201, `"${folded.toUpperCase()}" should match "${p.maiden}"`);
  await expectScreen(page, 'screen-session');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('a password already defined: told to log in or call the helpline', { timeout: TEST_TIMEOUT }, async () => {
  const p = person('already-defined');
  const pw = strongPassword(p);
  await defineViaApi(p, pw);
  const { context, page } = await openPage(browser);
  await openDefine(page, p.pesel, 'Inne-Haslo-77');
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden);
  await vis(page).getByLabel('Powtórz hasło').fill('Inne-Haslo-77');
  const r = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(r.status(), 409);
  assert.equal((await r.json()).code, 'password_already_defined');
  const text = await expectAlert(page, 'define', /Hasło dla tego numeru PESEL zostało już zdefiniowane/);
  assert.match(text, /ZALOGUJ/);
  assert.ok(text.includes(meta.helpline));
  await captureScreen(page, '13-define-already-defined');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});

test('a reserved PESEL: pointed to login.gov.pl and the helpline', { timeout: TEST_TIMEOUT }, async () => {
  const p = reservedPerson();
  const { context, page } = await openPage(browser);
  await openDefine(page, p.pesel, 'Zastrzezony-1');
  await vis(page).getByLabel('Nazwisko rodowe matki').fill(p.maiden);
  await vis(page).getByLabel('Powtórz hasło').fill('Zastrzezony-1');
  const r = await submitAndWait(page, '/api/v1/password', () => page.getByRole('button', { name: /DALEJ/ }).click());
  assert.equal(r.status(), 403);
  assert.equal((await r.json()).code, 'pesel_reserved');
  const text = await expectAlert(page, 'define', /numer PESEL jest zastrzeżony/);
  assert.ok(text.includes(meta.helpline));
  assert.equal(await page.locator('#define-alert a', { hasText: 'login.gov.pl' }).getAttribute('href'), meta.loginGovUrl);
  await captureScreen(page, '14-define-pesel-reserved');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});
