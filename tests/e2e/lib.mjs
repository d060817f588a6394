// Shared helpers for the end-to-end tests. Run them through tests/e2e/run.sh, which
// starts the service and sets the E2E_* variables read here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, request as pwRequest } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through tests/e2e/run.sh`);
  return v;
}

export const BASE_URL = env('E2E_BASE_URL');
export const ADMIN_URL = env('E2E_ADMIN_URL');
export const ADMIN_TOKEN = env('E2E_ADMIN_TOKEN');
export const SHOT_DIR = env('E2E_SCREENSHOT_DIR');
export const REGISTRY_CSV = env('E2E_REGISTRY_CSV');
export const LOCK_BLOCK_SECONDS = Number(env('E2E_LOCK_BLOCK_SECONDS'));
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';

export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
export const DESKTOP = { width: 1280, height: 900 };
export const NARROW = { width: 320, height: 640 };
export const TEST_TIMEOUT = 120_000;

/* ---------------------------------------------------------------- demo registry */

function readRegistry() {
  const lines = fs.readFileSync(REGISTRY_CSV, 'utf8').split(/\r?\n/).filter((l) => l.trim());
  const header = lines.shift().split(',').map((s) => s.trim());
  const iP = header.indexOf('pesel');
  const iM = header.indexOf('mother_maiden_name');
  const iR = header.indexOf('reserved');
  assert.ok(iP >= 0 && iM >= 0, `unexpected registry header in ${REGISTRY_CSV}: ${header}`);
  return lines.map((l) => {
    const c = l.split(',');
    return { pesel: c[iP].trim(), maiden: c[iM].trim(), reserved: iR >= 0 && c[iR].trim().toLowerCase() === 'true' };
  });
}
const REGISTRY = readRegistry();
const OPEN = REGISTRY.filter((p) => !p.reserved);
const RESERVED = REGISTRY.filter((p) => p.reserved);

// Every test that touches an account gets its own person, so no test sees another's
// password, failures or lock. The names are listed here so that two tests never share one.
const SLOTS = [
  'define-logout-login', 'wrong-password', 'lock', 'keyboard', 'weak-password',
  'identity-not-verified', 'already-defined', 'oidc-handoff',
];
export function person(slot) {
  const i = SLOTS.indexOf(slot);
  assert.ok(i >= 0, `unknown person slot ${slot}`);
  assert.ok(OPEN.length > i, `the demo registry has only ${OPEN.length} non-reserved rows`);
  return OPEN[i];
}
// A person after all the slots above, chosen by a property of the row (first match).
export function sparePerson(pred) {
  return OPEN.slice(SLOTS.length).find(pred) || null;
}
export function reservedPerson() {
  assert.ok(RESERVED.length > 0, `the demo registry ${REGISTRY_CSV} has no reserved row`);
  return RESERVED[0];
}

// A password that satisfies the policy and is unique per person.
export function strongPassword(p) { return `Spis2021-${p.pesel.slice(-4)}Xk`; }

// PESEL helpers for invalid inputs.
const W = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
export function withChecksum(ten) {
  const sum = ten.split('').reduce((s, d, i) => s + W[i] * Number(d), 0);
  return ten + String((10 - (sum % 10)) % 10);
}
export function breakChecksum(pesel) {
  const last = (Number(pesel[10]) + 1) % 10;
  return pesel.slice(0, 10) + last;
}

/* ---------------------------------------------------------------- time formatting (as the page) */

const dtf = new Intl.DateTimeFormat('pl-PL', { timeZone: 'Europe/Warsaw', day: 'numeric', month: 'long', year: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
export function warsaw(date, withSeconds) {
  const p = {};
  for (const part of dtf.formatToParts(date)) p[part.type] = part.value;
  return `${p.day} ${p.month} ${p.year}\u00a0r., godz.\u00a0${p.hour}:${p.minute}${withSeconds ? ':' + p.second : ''}`;
}

/* ---------------------------------------------------------------- browser */

export async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A fresh context (own cookies) and page. The browser's time zone is deliberately NOT
// Warsaw, so the test proves the page converts times to Europe/Warsaw itself.
// Records console errors (CSP violations show up there), page errors and any request to
// another host (which is aborted) than the service and `allowOrigins` (the test IdP).
export async function openPage(browser, { allowOrigins = [] } = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, locale: 'pl-PL', timezoneId: 'America/New_York' });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  const origins = [new URL(BASE_URL).origin, ...allowOrigins.map((o) => new URL(o).origin)];
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith('data:') || origins.includes(new URL(u).origin)) return route.continue();
    problems.push(`request to another host: ${u}`);
    return route.abort();
  });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.problems = problems;
  return { context, page };
}

// Asserts the page logged no console error (e.g. CSP), threw nothing and called no other host.
// `allow` lists regexps for console errors a test provokes on purpose (e.g. a 401 or 503
// response that Chromium logs as "Failed to load resource").
export function assertClean(page, allow = []) {
  const left = page.problems.filter((p) => !(p.startsWith('console error: Failed to load resource')
    && allow.some((re) => re.test(p))));
  assert.deepEqual(left, [], 'the page logged errors or called another host');
}
// Chromium logs every non-2xx fetch as "Failed to load resource: the server responded with
// a status of N". These are expected whenever a test provokes an error response.
export const EXPECTED_HTTP_ERRORS = [/status of (401|403|409|422|423|429|503)/];

export async function gotoHome(page) {
  await page.goto(BASE_URL + '/');
  await page.locator('#screen-method:not([hidden]), #screen-session:not([hidden])').waitFor();
}

export async function visibleScreen(page) {
  return page.evaluate(() => {
    const s = [...document.querySelectorAll('main > .screen')].filter((x) => !x.hidden);
    return s.map((x) => x.id).join(',');
  });
}
export async function expectScreen(page, id) {
  await page.locator(`#${id}`).waitFor({ state: 'visible' });
  assert.equal(await visibleScreen(page), id);
}
export async function focusedId(page) {
  return page.evaluate(() => document.activeElement && document.activeElement.id);
}

/* ---------------------------------------------------------------- axe and screenshots */

export const axeSummary = [];

export async function checkAxe(page, label) {
  const r = await new AxeBuilder({ page }).withTags(AXE_TAGS).analyze();
  const v = r.violations.map((x) => `${x.id} [${x.impact}] ${x.help}: ${x.nodes.map((n) => n.target.join(' ')).join(' | ')}`);
  console.log(`axe ${label}: ${r.violations.length} violations, ${r.passes.length} rules passed, ${r.incomplete.length} need review`);
  axeSummary.push({ label, violations: r.violations.length });
  assert.deepEqual(v, [], `axe (${AXE_TAGS.join(', ')}) violations on ${label}`);
}

// axe at 1280 px and 320 px, a full-page screenshot at both widths, and no horizontal
// scrolling at 320 px (WCAG 1.4.10 reflow).
export async function captureScreen(page, name) {
  fs.mkdirSync(SHOT_DIR, { recursive: true });
  await page.setViewportSize(DESKTOP);
  await checkAxe(page, `${name} @1280`);
  await page.screenshot({ path: path.join(SHOT_DIR, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize(NARROW);
  await checkAxe(page, `${name} @320`);
  await page.screenshot({ path: path.join(SHOT_DIR, `${name}-320.png`), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${name}: the page scrolls horizontally at 320 px (${overflow} px too wide)`);
  await page.setViewportSize(DESKTOP);
}

/* ---------------------------------------------------------------- field assertions */

// The error is shown next to the field, the field is aria-invalid and described by it.
export async function expectFieldError(page, inputId, re) {
  const info = await page.evaluate((id) => {
    const input = document.getElementById(id);
    const err = document.getElementById(id + '-error');
    return {
      invalid: input.getAttribute('aria-invalid'),
      describedBy: (input.getAttribute('aria-describedby') || '').split(/\s+/),
      errHidden: err.hidden,
      errText: err.textContent,
      errId: err.id,
    };
  }, inputId);
  assert.equal(info.invalid, 'true', `${inputId} should be aria-invalid`);
  assert.equal(info.errHidden, false, `${inputId}-error should be visible`);
  assert.ok(info.describedBy.includes(info.errId), `${inputId} should be aria-describedby ${info.errId}`);
  assert.match(info.errText, re);
  return info.errText;
}
export async function expectNoFieldError(page, inputId) {
  const info = await page.evaluate((id) => ({
    invalid: document.getElementById(id).getAttribute('aria-invalid'),
    hidden: document.getElementById(id + '-error').hidden,
  }), inputId);
  assert.equal(info.invalid, null, `${inputId} should not be aria-invalid`);
  assert.equal(info.hidden, true, `${inputId}-error should be hidden`);
}

// The page-level message of a screen: visible, focused, and its text.
export async function expectAlert(page, screen, re) {
  const box = page.locator(`#${screen}-alert`);
  await box.waitFor({ state: 'visible' });
  const text = await box.textContent();
  assert.match(text, re);
  assert.equal(await focusedId(page), `${screen}-alert`, 'focus should move to the page-level message');
  return text;
}

/* ---------------------------------------------------------------- API set-up (not through the page) */

export async function defineViaApi(p, password) {
  const ctx = await pwRequest.newContext({ baseURL: BASE_URL });
  try {
    const r = await ctx.post('/api/v1/password', {
      data: { pesel: p.pesel, motherMaidenName: p.maiden, password, passwordRepeat: password },
    });
    assert.equal(r.status(), 201, `set-up: defining a password via the API answered ${r.status()} ${await r.text()}`);
  } finally {
    await ctx.dispose();
  }
}

export async function getMeta() {
  const ctx = await pwRequest.newContext({ baseURL: BASE_URL });
  try {
    const r = await ctx.get('/api/v1/meta');
    assert.equal(r.status(), 200);
    return await r.json();
  } finally {
    await ctx.dispose();
  }
}

export async function admin(method, pathname) {
  const ctx = await pwRequest.newContext({ baseURL: ADMIN_URL, extraHTTPHeaders: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  try {
    const r = await ctx.fetch(pathname, { method });
    const text = await r.text();
    return { status: r.status(), body: text ? JSON.parse(text) : null };
  } finally {
    await ctx.dispose();
  }
}

/* ---------------------------------------------------------------- page actions */

export async function openLogin(page) {
  await gotoHome(page);
  await page.getByRole('link', { name: /^PESEL/ }).click();
  await expectScreen(page, 'screen-login');
}

// Waits for the response of `path` triggered by `action`.
export async function submitAndWait(page, path, action) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === path && r.request().method() === 'POST'),
    action(),
  ]);
  return resp;
}

// Counts POSTs to the API made by the page (to prove client-side checks send nothing).
export function countApiPosts(page) {
  const seen = [];
  page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname.startsWith('/api/')) seen.push(new URL(r.url()).pathname); });
  return seen;
}

// The visible screen: labels repeat across screens (hidden ones included by getByLabel).
export const vis = (page) => page.locator('main > .screen:not([hidden])');
