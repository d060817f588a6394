// "Nie posiadam numeru PESEL": the request form, its validation and the reference shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, assertClean, EXPECTED_HTTP_ERRORS, gotoHome, expectScreen, focusedId, captureScreen,
  expectFieldError, submitAndWait, countApiPosts, admin, TEST_TIMEOUT,
  vis,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('no PESEL: the request form checks its fields, then shows the reference', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page } = await openPage(browser);
  const posts = countApiPosts(page);
  await gotoHome(page);
  await page.getByRole('link', { name: /Nie posiadam numeru PESEL/ }).click();
  await expectScreen(page, 'screen-nopesel');
  assert.equal(await focusedId(page), 'nopesel-title');
  await captureScreen(page, '15-nopesel');

  // Empty: name and "e-mail or phone" flagged, focus on the name, nothing sent.
  await page.getByRole('button', { name: 'WYŚLIJ PROŚBĘ' }).click();
  await expectFieldError(page, 'nopesel-name', /imię i nazwisko/i);
  assert.equal(await focusedId(page), 'nopesel-name');
  const contact = await page.evaluate(() => ({
    text: document.getElementById('nopesel-contact-error').textContent,
    hidden: document.getElementById('nopesel-contact-error').hidden,
    email: [document.getElementById('nopesel-email').getAttribute('aria-invalid'), document.getElementById('nopesel-email').getAttribute('aria-describedby')],
    phone: [document.getElementById('nopesel-phone').getAttribute('aria-invalid'), document.getElementById('nopesel-phone').getAttribute('aria-describedby')],
  }));
  assert.equal(contact.hidden, false);
  assert.match(contact.text, /adres e-mail lub numer telefonu/);
  assert.equal(contact.email[0], 'true');
  assert.match(contact.email[1], /nopesel-contact-error/);
  assert.equal(contact.phone[0], 'true');
  assert.match(contact.phone[1], /nopesel-contact-error/);
  await captureScreen(page, '16-nopesel-errors');

  await vis(page).getByLabel('Imię i nazwisko').fill('Anna Nowak-Kowalska');
  await vis(page).getByLabel('Adres e-mail').fill('anna.nowak@');
  await page.getByRole('button', { name: 'WYŚLIJ PROŚBĘ' }).click();
  await expectFieldError(page, 'nopesel-email', /prawidłowy adres e-mail/);
  assert.equal(await focusedId(page), 'nopesel-email');
  assert.deepEqual(posts, [], 'nothing sent while the form has errors');

  await vis(page).getByLabel('Adres e-mail').fill('');
  await vis(page).getByLabel('Numer telefonu').fill('+48 600 100 200');
  await vis(page).getByLabel(/Wiadomość/).fill('Proszę o kontakt po godzinie 16.');
  const r = await submitAndWait(page, '/api/v1/no-pesel-requests', () => page.getByRole('button', { name: 'WYŚLIJ PROŚBĘ' }).click());
  assert.equal(r.status(), 202);
  const { reference } = await r.json();
  assert.ok(reference, 'the 202 body has a reference');
  await expectScreen(page, 'screen-nopesel-done');
  assert.equal(await page.locator('#nopesel-reference').textContent(), reference);
  assert.equal(await focusedId(page), 'nopesel-done-title');
  await captureScreen(page, '17-nopesel-done');

  // The helpline sees it.
  const list = await admin('GET', '/admin/v1/no-pesel-requests');
  assert.equal(list.status, 200);
  assert.ok(JSON.stringify(list.body).includes(reference), 'the request is listed by the admin API');

  await page.getByRole('button', { name: /Powrót do wyboru metody/ }).click();
  await expectScreen(page, 'screen-method');
  assertClean(page, EXPECTED_HTTP_ERRORS);
  await context.close();
});
