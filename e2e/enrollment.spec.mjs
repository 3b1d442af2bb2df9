// The enrollment path in a real browser (Debian's headless Chromium, driven by playwright-core)
// against a real `signet serve`: the partner link, every wizard step with one bad input each
// (a readable message, the values already typed kept), submission, the status page, the emailed
// verification link read from a real SMTP sink, sign-in, and the operator console's vetting up
// to "token shipped"; then the applicant resets a forgotten password through the emailed link
// and sets up the Certificate Management Center (soft token with an authenticator — oathtool —,
// recovery questions with step-up, sign-in with a fresh code, a replayed code refused). Every
// page is kept as a full-page PNG for CI artifacts and checked with axe-core: no serious or
// critical accessibility violation (Section 508 / WCAG 2.1 AA). After each refused form the
// page is reloaded, as a person does, and must show the form again, never an error.
//
// crates/signet/tests/e2e_browser.rs owns the run (server, SMTP sink, operators) and sets:
//   SIGNET_BASE_URL     the server, e.g. http://127.0.0.1:41234
//   SIGNET_MAILDIR      the SMTP sink's Maildir (messages land in new/)
//   SIGNET_SCREENSHOTS  folder for NN-name.png
//   SIGNET_APPLICANT_PASSWORD  the account password the applicant chooses.
//   SIGNET_OPERATORS    JSON [{id, password, secret}, …]: two operators; TOTP codes come from
//                       oathtool, an implementation independent of the server's
//   SIGNET_CHROMIUM     optional, default /usr/bin/chromium
//
// A plain script rather than a test runner: the steps build on each other, so the first failure
// stops the walk, screenshots every open page as failure-*.png and exits 1.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through crates/signet/tests/e2e_browser.rs`);
  return value;
}

const BASE = required('SIGNET_BASE_URL').replace(/\/$/, '');
// Passkeys are bound to a host name, and browsers take none for an IP address: the server's
// passkey origin for a loopback address is localhost, where the passkey part of the walk runs.
const LOCAL = BASE.replace('://127.0.0.1:', '://localhost:');
const MAILDIR = required('SIGNET_MAILDIR');
const SHOTS = required('SIGNET_SCREENSHOTS');
const OPERATORS = JSON.parse(required('SIGNET_OPERATORS'));
const CHROMIUM = process.env.SIGNET_CHROMIUM || '/usr/bin/chromium';
const TOKEN_SERIAL = required('SIGNET_TOKEN_SERIAL');
// The retrieval client and the applicant's token: the `signet` binary under test, and the
// SoftHSM2 token the RA provisioned and shipped.
const SIGNET_BIN = required('SIGNET_BIN');
const PKCS11_MODULE = required('SIGNET_PKCS11_MODULE');
const SOFTHSM2_CONF = required('SOFTHSM2_CONF');
const TOKEN_PIN = '246813';

// What the applicant types.
const APPLICANT = {
  name: 'Jane Q. Doe',
  email: 'jane.doe@acme-widgets.example',
  phone: '(703) 555-0142',
  line1: '4400 University Dr',
  line2: 'Suite 200',
  city: 'Fairfax',
  state: 'VA',
  zip: '22030',
};
const PASSWORD = required('SIGNET_APPLICANT_PASSWORD');
const ORGANIZATION = 'Acme Widgets, Inc.';
const PO_NUMBER = 'PO-2026/0042';
const MAILED_TRACKING = '9400 1000 0000 0000 0000 00';
const RESENT_TRACKING = '9400 1000 0000 0000 0000 17';

mkdirSync(SHOTS, { recursive: true });
let shotCount = 0;
const openPages = new Map();
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's verdict on the page as shown: fails on any serious or critical violation. The
 * script is evaluated through the DevTools protocol, which the pages' CSP does not govern, so
 * the page itself is checked with its real CSP in force.
 */
async function accessible(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`);
  });
  assert.deepEqual(violations, [], `axe-core on ${name} (${page.url()}):\n${violations.join('\n')}`);
}

/** A full-page screenshot, numbered in walk order, of a page axe-core finds accessible. */
async function shot(page, name) {
  shotCount += 1;
  const file = join(SHOTS, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await accessible(page, name);
}

/**
 * Reload after a refused form, as a person does: the browser asks for the page again (the
 * refusal came by Post/Redirect/Get, so nothing is posted twice) and gets a page, not a
 * "405" — the form itself, or the page that holds it when the address only takes posts.
 */
async function reloadAfterError(page, name, expectedPath) {
  const before = new URL(page.url()).pathname;
  const r = await page.reload({ waitUntil: 'load' });
  assert.equal(r.status(), 200, `reload after ${name} at ${before} answered ${r.status()}`);
  assert.equal(new URL(page.url()).pathname, expectedPath ?? before, `reload after ${name}`);
  await shot(page, `${name}-reloaded`);
}

function step(title) {
  console.log(`- ${title}`);
}

/** Clicks a submit button and waits for the page that comes back (after any redirect); returns its response. */
async function clickAndWait(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(button)]);
  return response;
}

/** Submits the page's form that goes to `action` (with or without a query string). */
function submit(page, action, method = 'post') {
  const form = `form[method=${method}]`;
  return clickAndWait(page, `${form}[action="${action}"] button[type=submit], ${form}[action^="${action}?"] button[type=submit]`);
}

/** Submits one of the console application page's forms, by its id. */
function act(page, formId) {
  return clickAndWait(page, `#${formId} button[type=submit]`);
}

/** The navigation landed on `path` with 200. */
function landed(page, response, path) {
  assert.equal(new URL(page.url()).pathname, path, `expected ${path}, at ${page.url()}`);
  assert.equal(response.status(), 200, `${path} answered ${response.status()}`);
}

/** The page came back with 422, the banner, and each message beside its field. */
async function refused(page, response, messages) {
  assert.equal(response.status(), 422, `a wrong form answers 422, got ${response.status()} at ${page.url()}`);
  const banner = await page.textContent('#form-error');
  assert.match(banner, /Nothing you entered was lost/);
  const shown = (await page.locator('.field-error').allTextContents()).join('\n');
  for (const m of messages) assert.ok(shown.includes(m), `missing message ${JSON.stringify(m)} in:\n${shown}`);
}

async function checked(page, name, v) {
  return page.isChecked(`input[name="${name}"][value="${v}"]`);
}

async function newPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  openPages.set(label, page);
  return page;
}

/** Every message in the sink, parsed by Python's email package (not by the code that wrote them). */
function mailbox() {
  const dir = join(MAILDIR, 'new');
  if (!existsSync(dir)) return [];
  const files = readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => join(dir, f));
  if (files.length === 0) return [];
  const parse = `
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    out.append({'to': str(m['To']), 'subject': str(m['Subject']), 'body': m.get_body(('plain',)).get_content()})
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', parse, ...files], { encoding: 'utf8' }));
}

/** Waits for a message to `to` whose subject matches; the relay sends every 15 seconds. */
async function waitForMail(to, subject, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = mailbox().find((m) => m.to.includes(to) && subject.test(m.subject));
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = mailbox().map((m) => `${m.to}: ${m.subject}`);
      throw new Error(`no mail to ${to} matching ${subject} in ${timeoutMs} ms; the sink has ${JSON.stringify(seen)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The current TOTP code (or the one `later` seconds ahead) for a base32 secret, from oathtool. */
function totp(secret, { algorithm = 'sha1', digits = 6, later = 0 } = {}) {
  const args = [`--totp=${algorithm}`, `--digits=${digits}`, '-b', secret];
  if (later) args.push('-N', `now + ${later} seconds`);
  return execFileSync('oathtool', args, { encoding: 'utf8' }).trim();
}

// ---------------------------------------------------------------------------------------------

/** A colleague types the organization into a draft and leaves: nobody else may be offered it. */
async function colleagueDrafts(browser) {
  step('a colleague types the organization into a draft they do not finish');
  const page = await newPage(browser, 'colleague');
  await page.goto(`${BASE}/apply?program=PIEE`);
  await page.check('input[name=residency][value=united-states]');
  await submit(page, '/apply');
  await submit(page, '/apply/agencies');
  await page.check('input[name=cert_type][value=medium]');
  await page.check('input[name=years][value="1"]');
  await submit(page, '/apply/certificate');
  await page.fill('#new_name', ORGANIZATION);
  const r = await submit(page, '/apply/organization');
  landed(page, r, '/apply/personal');
  await page.context().close();
  openPages.delete('colleague');
}

/** The wizard from the partner link to submission; returns the application reference. */
async function apply(browser, page) {
  step('partner link pre-fills the program');
  let r = await page.goto(`${BASE}/apply?program=Integrate`);
  assert.equal(r.status(), 200);
  assert.equal(await page.inputValue('#program'), 'Integrate');
  await shot(page, 'apply-partner-link');

  step('program: residency missing');
  r = await submit(page, '/apply');
  await refused(page, r, ['Say whether you live in the United States.']);
  assert.equal(await page.inputValue('#program'), 'Integrate', 'the program stays chosen');
  await shot(page, 'apply-program-error');
  await reloadAfterError(page, 'apply-program-error');
  assert.equal(await page.inputValue('#program'), 'Integrate', 'the program stays chosen after reload');
  await page.check('input[name=residency][value=united-states]');
  r = await submit(page, '/apply');
  landed(page, r, '/apply/agencies');

  step('agencies: a choice no single type satisfies');
  assert.ok(await checked(page, 'agency', 'integrate-il4'), 'the program pre-selects its agency');
  await shot(page, 'agencies');
  await page.check('input[name=agency][value=canes]');
  await page.check('input[name=agency][value=il5-enclave]');
  r = await submit(page, '/apply/agencies');
  await refused(page, r, ['No single certificate type is accepted by all of']);
  for (const a of ['integrate-il4', 'canes', 'il5-enclave']) {
    assert.ok(await checked(page, 'agency', a), `${a} stays checked`);
  }
  await shot(page, 'agencies-error');
  await reloadAfterError(page, 'agencies-error');
  await page.check('input[name=agency][value=canes]');
  await page.uncheck('input[name=agency][value=il5-enclave]');
  r = await submit(page, '/apply/agencies');
  landed(page, r, '/apply/certificate');

  step('certificate: validity without a type');
  assert.match(await page.textContent('#selection-message'), /Medium Token Assurance/);
  assert.match(await page.textContent('ul.excluded'), /IL4 systems require the private key on a hardware token/);
  assert.equal(await page.locator('input[name=cert_type][value=medium]').count(), 0, 'Medium is not offered');
  assert.match(await page.textContent('table'), /\$\d+\.\d\d/);
  await shot(page, 'certificate');
  await page.check('input[name=years][value="2"]');
  r = await submit(page, '/apply/certificate');
  await refused(page, r, ['Choose a certificate type.']);
  assert.ok(await checked(page, 'years', '2'), 'the validity stays chosen');
  await shot(page, 'certificate-error');
  await reloadAfterError(page, 'certificate-error');
  await page.check('input[name=years][value="2"]');
  await page.check('input[name=cert_type][value=medium-token]');
  r = await submit(page, '/apply/certificate');
  landed(page, r, '/apply/organization');

  await colleagueDrafts(browser);

  step("organization: nothing chosen; a colleague's unfinished draft offers nothing");
  r = await submit(page, '/apply/organization');
  await refused(page, r, ['Choose your organization from the search results, or enter its legal name']);
  await shot(page, 'organization-error');
  await reloadAfterError(page, 'organization-error');
  await page.fill('#q', 'widgets');
  r = await submit(page, '/apply/organization', 'get');
  assert.equal(r.status(), 200);
  assert.equal(await page.locator('input[name=choose]').count(), 0, 'a draft shows its names to nobody');
  await shot(page, 'organization-search');
  await page.fill('#new_name', ORGANIZATION);
  r = await submit(page, '/apply/organization');
  landed(page, r, '/apply/personal');

  step('personal details: the browser checks the email field itself');
  await page.fill('#name', APPLICANT.name);
  await page.fill('#email', 'jane.doe-at-acme');
  await page.fill('#phone', APPLICANT.phone);
  await page.fill('#line1', APPLICANT.line1);
  await page.fill('#line2', APPLICANT.line2);
  await page.selectOption('#state', '');
  await page.fill('#zip', '2203');
  await page.click('form[method=post][action="/apply/personal"] button[type=submit]');
  assert.equal(await page.$eval('#email', (e) => e.validity.valid), false, 'an address without @ is held back');
  assert.equal(new URL(page.url()).pathname, '/apply/personal');

  step('personal details: wrong email, missing city and state, bad ZIP');
  // Valid to the browser (no dot is needed there), not to us: an email domain needs one.
  await page.fill('#email', 'jane.doe@acme');
  r = await submit(page, '/apply/personal');
  await refused(page, r, [
    'Enter an email address such as jane@example.com.',
    'Enter the city, or APO, FPO or DPO for a military address.',
    'Choose your state, territory or military address (AA, AE, AP) from the list.',
    'A ZIP code is 5 digits, or 5 digits, a dash and 4 more: 22150 or 22150-1234.',
  ]);
  for (const [field, typed] of [
    ['name', APPLICANT.name],
    ['email', 'jane.doe@acme'],
    ['phone', APPLICANT.phone],
    ['line1', APPLICANT.line1],
    ['line2', APPLICANT.line2],
    ['state', ''],
    ['zip', '2203'],
  ]) {
    assert.equal(await page.inputValue(`#${field}`), typed, `${field} keeps what was typed`);
  }
  await shot(page, 'personal-error');
  await reloadAfterError(page, 'personal-error');
  for (const field of ['name', 'email', 'phone', 'line1', 'line2', 'city', 'zip']) {
    await page.fill(`#${field}`, APPLICANT[field]);
  }
  await page.selectOption('#state', APPLICANT.state);
  r = await submit(page, '/apply/personal');
  landed(page, r, '/apply/account');

  step('password: too weak, then two that differ');
  assert.match(await page.textContent('main'), new RegExp(APPLICANT.email.replace(/\./g, '\\.')));
  await page.fill('#password', 'janedoe');
  await page.fill('#confirm', 'janedoe');
  r = await submit(page, '/apply/account');
  await refused(page, r, ['Choose a stronger password']);
  assert.equal(await page.inputValue('#password'), '', 'a password is never sent back into the page');
  await shot(page, 'account-error');
  await reloadAfterError(page, 'account-error');
  await page.fill('#password', PASSWORD);
  await page.fill('#confirm', `${PASSWORD}x`);
  r = await submit(page, '/apply/account');
  await refused(page, r, ['The two passwords differ.']);
  await page.fill('#password', PASSWORD);
  await page.fill('#confirm', PASSWORD);
  r = await submit(page, '/apply/account');
  landed(page, r, '/apply/payment');

  step('payment: the test processor declines a card');
  const price = await page.textContent('#price');
  assert.match(price, /^\$\d+\.\d\d$/);
  await page.check('input[name=method][value=card]');
  await page.fill('#card', '4000000000000002');
  r = await submit(page, '/apply/payment');
  await refused(page, r, ['The card was declined']);
  assert.ok(await checked(page, 'method', 'card'), 'the method stays chosen');
  assert.equal(await page.inputValue('#card'), '', 'a card number is never sent back into the page');
  await shot(page, 'payment-error');
  await reloadAfterError(page, 'payment-error');
  await page.check('input[name=method][value=purchase-order]');
  await page.fill('#po', PO_NUMBER);
  r = await submit(page, '/apply/payment');
  landed(page, r, '/apply/review');

  step('review: submitted without the confirmation box');
  const summary = await page.textContent('dl.summary');
  const certificate = `Medium Token Assurance, 2 year(s), ${price}`;
  for (const expected of [certificate, ORGANIZATION, APPLICANT.name, APPLICANT.email, APPLICANT.city]) {
    assert.ok(summary.includes(expected), `review shows ${expected}:\n${summary}`);
  }
  await shot(page, 'review');
  r = await submit(page, '/apply/review');
  await refused(page, r, ['Confirm that the information is true and complete.']);
  await shot(page, 'review-error');
  await reloadAfterError(page, 'review-error');
  await page.check('input[name=agree]');
  r = await submit(page, '/apply/review');
  assert.equal(r.status(), 200);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('submitted'), '1');
  const reference = url.pathname.replace('/applications/', '');
  assert.equal(await page.textContent('#reference'), reference);
  return reference;
}

/** Opens the applicant's status page and checks the state it shows. */
async function statusPage(page, reference, state) {
  const r = await page.goto(`${BASE}/applications/${reference}`);
  assert.equal(r.status(), 200);
  assert.equal(await page.textContent('#state'), state);
}

async function verifyEmail(browser, page, reference) {
  step('status page after submission');
  assert.match(await page.textContent('#submitted'), /Your application is submitted/);
  assert.equal(await page.textContent('#state'), 'Submitted');
  assert.match(await page.textContent('#deadline'), /Your forms must arrive by \d{4}-\d\d-\d\d \(4[45] days left\)/);
  assert.ok(await page.isVisible('#timeline svg'), 'the timeline picture is shown');
  await shot(page, 'status-submitted');
  const links = await page.locator('a[href$=".pdf"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.equal(links.length, 3, 'three forms to print');
  const pdf = await page.request.get(`${BASE}${links[1]}`);
  assert.equal(pdf.headers()['content-type'], 'application/pdf');
  assert.equal((await pdf.body()).subarray(0, 5).toString(), '%PDF-');

  step('the verification email arrives through SMTP');
  const mail = await waitForMail(APPLICANT.email, /Verify your email/);
  const link = mail.body.match(/https?:\/\/\S+\/verify-email\?\S+/)?.[0];
  assert.ok(link, `a verification link in:\n${mail.body}`);
  assert.ok(link.startsWith(`${BASE}/verify-email?application=${reference}&token=`), link);

  // The link is opened where the mail is read: another browser session.
  const reader = await newPage(browser, 'mail-reader');
  step('a link with a wrong token is refused readably');
  const token = new URL(link).searchParams.get('token');
  const wrong = link.replace(`token=${token}`, `token=${token.slice(0, -1)}${token.endsWith('0') ? '1' : '0'}`);
  await reader.goto(wrong);
  let r = await submit(reader, '/verify-email');
  assert.equal(r.status(), 400);
  assert.match(await reader.textContent('#verify-error'), /This link is not valid any more/);
  await shot(reader, 'verify-wrong-token');
  await reloadAfterError(reader, 'verify-wrong-token');

  step('the emailed link confirms the address');
  await reader.goto(link);
  assert.equal(await reader.textContent('#confirm'), 'Confirm my email address');
  await shot(reader, 'verify-email');
  r = await submit(reader, '/verify-email');
  assert.equal(r.status(), 200);
  assert.match(await reader.textContent('#verified'), /Your email address is confirmed/);
  await shot(reader, 'verify-done');

  step('a used link is refused readably');
  await reader.goto(link);
  r = await submit(reader, '/verify-email');
  assert.equal(r.status(), 400);
  assert.match(await reader.textContent('#verify-error'), /it was used already/);
  await shot(reader, 'verify-link-used');
  await reader.context().close();
  openPages.delete('mail-reader');

  await statusPage(page, reference, 'Email confirmed');
  assert.match(await page.textContent('main'), /Where to mail your forms/);
  await shot(page, 'status-email-confirmed');

  step('the applicant tells the RA how the forms were mailed: a number that is not a USPS one first');
  await page.selectOption('#mailing-carrier', 'usps');
  await page.fill('#mailing-tracking', '12');
  r = await submit(page, `/applications/${reference}/mailing`);
  assert.equal(r.status(), 422);
  assert.match(await page.textContent('#tracking-error'), /USPS/);
  assert.equal(await page.inputValue('#mailing-tracking'), '12', 'what was typed is kept');
  await shot(page, 'status-mailing-error');
  await reloadAfterError(page, 'status-mailing-error', `/applications/${reference}`);
  await page.selectOption('#mailing-carrier', 'usps');
  await page.fill('#mailing-tracking', MAILED_TRACKING);
  r = await submit(page, `/applications/${reference}/mailing`);
  landed(page, r, `/applications/${reference}`);
  assert.match(await page.textContent('#mailing-recorded'), /We noted the tracking number/);
  await shot(page, 'status-mailing-recorded');
}

async function signIn(browser, reference) {
  step('sign-in from the home page: a wrong password, then the right one');
  const page = await newPage(browser, 'returning-applicant');
  await page.goto(`${BASE}/`);
  await shot(page, 'home');
  await page.fill('#reference', reference);
  await page.fill('#password', 'Harbor-Quartz-Meadow-00');
  let r = await submit(page, '/applications/sign-in');
  assert.equal(r.status(), 401);
  assert.equal(await page.textContent('#signin-error'), 'The application reference or password is not correct.');
  assert.equal(await page.inputValue('#reference'), reference, 'the reference stays typed');
  await shot(page, 'signin-error');
  await reloadAfterError(page, 'signin-error', '/');
  await page.fill('#reference', reference);
  await page.fill('#password', PASSWORD);
  r = await submit(page, '/applications/sign-in');
  landed(page, r, `/applications/${reference}`);
  assert.equal(await page.textContent('#state'), 'Email confirmed');
  return page;
}

// ---------------------------------------------------------------------------------------------
// The operator console

/** Signs an operator in to the console: one wrong code first when `typo`, then the right one. */
async function operatorSignIn(browser, operator, label, typo) {
  const page = await newPage(browser, label);
  let r = await page.goto(`${BASE}/console`);
  assert.equal(new URL(page.url()).pathname, '/console/sign-in', 'the console asks for a sign-in');
  assert.equal(r.status(), 200);
  await page.fill('#operator', operator.id);
  await page.fill('#password', operator.password);
  if (typo) {
    step(`${operator.id}: a wrong code is refused`);
    const code = totp(operator.secret);
    await page.fill('#code', code === '000000' ? '111111' : '000000');
    r = await submit(page, '/console/sign-in');
    assert.equal(r.status(), 401);
    assert.ok((await page.textContent('#signin-error')).length > 0, 'a readable refusal');
    assert.equal(await page.inputValue('#operator'), operator.id, 'the operator id stays typed');
    assert.equal(await page.inputValue('#password'), '', 'the password is never sent back');
    await shot(page, `console-signin-error-${operator.id}`);
    await reloadAfterError(page, `console-signin-error-${operator.id}`);
    await page.fill('#operator', operator.id);
    await page.fill('#password', operator.password);
  }
  step(`${operator.id} signs in with password and TOTP`);
  await page.fill('#code', totp(operator.secret));
  r = await submit(page, '/console/sign-in');
  landed(page, r, '/console');
  assert.match(await page.textContent('#operator'), new RegExp(`\\(${operator.id}\\)`));
  return page;
}

/** Fills the console's "forms received" form: the originals came by USPS, notarized `today`. */
async function formsReceived(page, today, tracking) {
  await page.selectOption('#forms-carrier', 'usps');
  await page.fill('#forms-tracking', tracking);
  await page.check('#forms-form input[name=officer_page]');
  await page.check('#forms-form input[name=identity_page]');
  await page.check('#forms-form input[name=attestation][value=notarized]');
  await page.fill('#notary_name', 'Maria Notary');
  await page.check('#forms-form input[name=seal][value=yes]');
  await page.fill('#notarized_on', today);
}

/** The command took: back on the application page with its notice and the new state. */
async function recorded(page, response, reference, state) {
  landed(page, response, `/console/applications/${reference}`);
  assert.ok(await page.isVisible('#notice'), 'a notice says what was recorded');
  assert.equal(await page.textContent('#state'), state);
}

async function vet(browser, reference, applicant) {
  const [a, b] = OPERATORS;
  const alice = await operatorSignIn(browser, a, 'operator-a', true);

  step('the organization the applicant registered waits for the RA; the operator confirms it');
  let r = await alice.goto(`${BASE}/console/organizations`);
  assert.equal(r.status(), 200);
  assert.match(await alice.textContent('#pending'), new RegExp(ORGANIZATION.replace(/[.,]/g, '\\$&')));
  await shot(alice, 'console-organizations');
  r = await clickAndWait(alice, `button[aria-label="Confirm ${ORGANIZATION}"]`);
  landed(alice, r, '/console/organizations');
  assert.ok((await alice.textContent('#confirmed')).includes(ORGANIZATION), 'now offered to applicants');
  await shot(alice, 'console-organization-confirmed');
  await alice.goto(`${BASE}/console`);

  step('the queue lists the application');
  const row = alice.locator('#queue tr', { hasText: reference });
  assert.equal(await row.count(), 1, 'the open application is in the queue');
  assert.match(await row.textContent(), /email-verified/);
  await shot(alice, 'console-queue');
  await Promise.all([alice.waitForNavigation(), row.locator('a').click()]);
  assert.equal(await alice.textContent('#reference'), reference);
  assert.equal(await alice.textContent('#state'), 'email-verified');
  assert.match(await alice.textContent('#submitted'), new RegExp(APPLICANT.name.replace('.', '\\.')));
  await shot(alice, 'console-application');

  step('the notary seal is missing: nothing ticked is refused, then the applicant is asked to re-send');
  r = await act(alice, 'deficiency-form');
  assert.equal(r.status(), 422);
  assert.ok((await alice.textContent('#problem-error')).length > 0, 'the missing choice is named');
  await shot(alice, 'console-deficiency-error');
  await reloadAfterError(alice, 'console-deficiency-error', `/console/applications/${reference}`);
  await alice.check('#deficiency-form input[name=problem][value=notary-seal-missing]');
  await alice.fill('#deficiency-note', 'The seal on the Identity Verification form is missing.');
  r = await act(alice, 'deficiency-form');
  landed(alice, r, `/console/applications/${reference}`);
  assert.match(await alice.textContent('#history'), /forms-deficient/);
  await shot(alice, 'console-deficiency-sent');

  step('the applicant reads what to re-send, in the mail and on the status page, and mails it again');
  const notice = await waitForMail(APPLICANT.email, /re-send some of your ECA forms/);
  assert.match(notice.body, /seal/i);
  for (const link of notice.body.match(/https?:\/\/\S+/g) ?? []) {
    assert.equal((await applicant.request.get(link)).status(), 200, `the mail's link ${link} opens a page`);
  }
  await statusPage(applicant, reference, 'Email confirmed');
  assert.match(await applicant.textContent('main'), /We need you to re-send some forms[\s\S]*seal/);
  await shot(applicant, 'status-re-send');
  await applicant.selectOption('#mailing-carrier', 'usps');
  await applicant.fill('#mailing-tracking', RESENT_TRACKING);
  r = await submit(applicant, `/applications/${reference}/mailing`);
  landed(applicant, r, `/applications/${reference}`);
  assert.doesNotMatch(await applicant.textContent('main'), /We need you to re-send/);

  step('forms received: a tracking number that is not the carrier\'s is refused');
  await alice.goto(`${BASE}/console/applications/${reference}`);
  assert.equal(await alice.inputValue('#forms-tracking'), RESENT_TRACKING.replace(/ /g, ''), 'the number the applicant gave is filled in');
  // The console's "received on" starts at the server's today; the notary signed the same day.
  const today = await alice.inputValue('#received_on');
  await formsReceived(alice, today, '12345');
  r = await act(alice, 'forms-form');
  assert.equal(r.status(), 422);
  assert.match(await alice.textContent('#refused'), /Nothing was recorded/);
  assert.ok((await alice.textContent('#tracking-error')).length > 0, 'the tracking number is named');
  assert.equal(await alice.inputValue('#notary_name'), 'Maria Notary', 'what was typed is kept');
  assert.equal(await alice.inputValue('#notarized_on'), today);
  assert.equal(await alice.inputValue('#forms-tracking'), '12345');
  await shot(alice, 'console-forms-error');
  await reloadAfterError(alice, 'console-forms-error', `/console/applications/${reference}`);
  await formsReceived(alice, today, '9400 1000 0000 0000 0000 00');
  r = await act(alice, 'forms-form');
  await recorded(alice, r, reference, 'forms-received');
  assert.match(await alice.textContent('main'), new RegExp(`Notarized on\\s*${today}`));
  await shot(alice, 'console-forms-received');

  step('call-back to the organization officer');
  await alice.fill('#officer_name', 'Robert Officer');
  await alice.fill('#phone', '(703) 555-0199');
  await alice.check('#callback-form input[name=outcome][value=confirmed]');
  r = await act(alice, 'callback-form');
  await recorded(alice, r, reference, 'officer-confirmed');

  step('identity documents');
  await alice.selectOption('#identity-form select[name=type] >> nth=0', 'us-passport');
  await alice.fill('#identity-form input[name=number] >> nth=0', 'A12345678');
  const expires = `${Number(today.slice(0, 4)) + 5}${today.slice(4)}`;
  await alice.fill('#identity-form input[name=expires] >> nth=0', expires);
  await shot(alice, 'console-identity');
  r = await act(alice, 'identity-form');
  await recorded(alice, r, reference, 'identity-verified');
  assert.ok(!(await alice.textContent('main')).includes('A12345678'), 'document numbers are shown masked');

  step('a note for the other operators');
  await alice.fill('#note', 'Officer confirmed employment on the first call.');
  r = await act(alice, 'note-form');
  landed(alice, r, `/console/applications/${reference}`);
  assert.match(await alice.textContent('#history'), /Officer confirmed employment on the first call\./);

  step(`${a.id} approves; a second approval by ${a.id} is refused`);
  r = await act(alice, 'approve-form');
  await recorded(alice, r, reference, 'first-approved');
  r = await act(alice, 'approve-form');
  assert.equal(r.status(), 422);
  assert.match(await alice.textContent('#refused'), /^Not recorded: /);
  assert.equal(await alice.textContent('#state'), 'first-approved');
  await shot(alice, 'console-same-approver');
  await reloadAfterError(alice, 'console-same-approver', `/console/applications/${reference}`);

  const bob = await operatorSignIn(browser, b, 'operator-b', false);
  await bob.goto(`${BASE}/console/applications/${reference}`);
  step(`${b.id} approves`);
  r = await act(bob, 'approve-form');
  await recorded(bob, r, reference, 'approved');

  step('the token ships: a Medium Token needs the serial of a token from the stock');
  await bob.selectOption('#ship-carrier', 'ups');
  await bob.fill('#ship-tracking', '1Z999AA10123456785');
  r = await act(bob, 'ship-form');
  assert.equal(r.status(), 422);
  assert.match(await bob.textContent('#token-serial-error'), /enter the serial number printed on the token/);
  await shot(bob, 'console-ship-needs-token');
  await reloadAfterError(bob, 'console-ship-needs-token', `/console/applications/${reference}`);
  await bob.selectOption('#ship-carrier', 'ups');
  await bob.fill('#ship-tracking', '1Z999AA10123456785');
  await bob.fill('#ship-token', TOKEN_SERIAL);
  r = await act(bob, 'ship-form');
  await recorded(bob, r, reference, 'token-shipped');
  const history = await bob.textContent('#history');
  for (const who of [`operator:${a.id}`, `operator:${b.id}`]) assert.ok(history.includes(who), `${who} in the history`);
  await shot(bob, 'console-token-shipped');

  step('signing out ends the operator session');
  await shot(alice, 'console-before-sign-out');
  await submit(alice, '/console/sign-out');
  assert.equal(new URL(alice.url()).pathname, '/console/sign-in');
  await alice.goto(`${BASE}/console/applications/${reference}`);
  assert.equal(new URL(alice.url()).pathname, '/console/sign-in');
  return bob;
}

/**
 * The token arrived: the RA issues the activation code, the mail leads to the retrieval guide
 * for the applicant's system, and the command the guide gives puts the certificates on the
 * token (the real client, on the SoftHSM2 token that was shipped).
 */
async function retrieve(browser, operator, reference, password) {
  step('the RA issues the activation code');
  await operator.goto(`${BASE}/console/applications/${reference}`);
  const r = await act(operator, 'activation-form');
  await recorded(operator, r, reference, 'certificates-ready');
  await shot(operator, 'console-activation-issued');

  step('the mail links to the retrieval guide, which names the command to run');
  const mail = await waitForMail(APPLICANT.email, /certificates are ready/);
  const code = mail.body.match(/Activation code: (\S+)/)?.[1];
  assert.ok(code, `an activation code in:\n${mail.body}`);
  const link = mail.body.match(/https?:\/\/\S+\/retrieve\?\S+/)?.[0];
  assert.ok(link, `a link to the retrieval guide in:\n${mail.body}`);
  const reader = await newPage(browser, 'retrieve-guide');
  const guide = await reader.goto(link);
  assert.equal(guide.status(), 200);
  assert.match(await reader.textContent('main'), new RegExp(`--application ${reference}`));
  await shot(reader, 'retrieve-guide');
  await reader.context().close();
  openPages.delete('retrieve-guide');

  step('signet token retrieve puts the certificates on the token');
  const out = execFileSync(
    SIGNET_BIN,
    ['token', 'retrieve', '--server', BASE, '--module', PKCS11_MODULE, '--application', reference, '--key-type', 'p-256'],
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        SOFTHSM2_CONF,
        SIGNET_ACTIVATION_CODE: code,
        SIGNET_PASSWORD: password,
        SIGNET_NEW_PIN: TOKEN_PIN,
      },
    },
  );
  assert.match(out, /unlock code/, out);
}

async function tokenShipped(page, reference) {
  step('the applicant sees "Token shipped" and gets the email');
  await statusPage(page, reference, 'Token shipped');
  assert.ok(await page.isVisible('#timeline svg'), 'the timeline picture is shown');
  assert.match(await page.textContent('#deadline'), /Retrieve your certificates by \d{4}-\d\d-\d\d \(\d+ days? left\)/);
  await shot(page, 'status-token-shipped');
  const mail = await waitForMail(APPLICANT.email, /token has shipped/);
  assert.match(mail.body, /1Z999AA10123456785/);
}

// ---------------------------------------------------------------------------------------------
// A forgotten password, and the Certificate Management Center

/** Resets the account password through the emailed link; returns the new password. */
async function resetPassword(browser, reference) {
  const chosen = `${PASSWORD}-new`;
  step('forgotten password: the reset page never says whether the address has an account');
  const page = await newPage(browser, 'password-reset');
  await page.goto(`${BASE}/`);
  await clickAndWait(page, '#forgot-password');
  assert.equal(new URL(page.url()).pathname, '/password-reset');
  await page.fill('#email', APPLICANT.email.toUpperCase());
  let r = await submit(page, '/password-reset');
  landed(page, r, '/password-reset');
  assert.match(await page.textContent('#reset-sent'), /If an account uses .* we have emailed it a link/);
  await shot(page, 'password-reset-sent');

  step('until the link is used, the current password still signs in');
  const mail = await waitForMail(APPLICANT.email, /Reset your ECA account password/);
  assert.match(mail.subject, new RegExp(reference));
  await page.goto(`${BASE}/`);
  await page.fill('#reference', reference);
  await page.fill('#password', PASSWORD);
  r = await submit(page, '/applications/sign-in');
  landed(page, r, `/applications/${reference}`);

  step('the emailed link: a weak password is refused with reasons, then a good one is set');
  const link = mail.body.match(/https?:\/\/\S+\/password-reset\/new\?token=\S+/)[0];
  const reader = await newPage(browser, 'reset-link');
  r = await reader.goto(link);
  assert.equal(r.status(), 200);
  await shot(reader, 'password-reset-form');
  await reader.fill('#password', 'short');
  await reader.fill('#again', 'short');
  r = await submit(reader, '/password-reset/new');
  assert.equal(r.status(), 422);
  assert.match(await reader.textContent('#reset-problems'), /use at least 12 characters/);
  await shot(reader, 'password-reset-weak');
  await reloadAfterError(reader, 'password-reset-weak');
  await reader.fill('#password', chosen);
  await reader.fill('#again', chosen);
  r = await submit(reader, '/password-reset/new');
  landed(reader, r, '/password-reset/new');
  assert.match(await reader.textContent('#reset-done'), new RegExp(`application ${reference} is changed`));
  await shot(reader, 'password-reset-done');

  step('the link works once');
  r = await reader.goto(link);
  assert.equal(r.status(), 410);
  assert.match(await reader.textContent('#reset-refused'), /already used/);
  await shot(reader, 'password-reset-link-used');
  await reader.context().close();
  openPages.delete('reset-link');
  return chosen;
}

/** Waits until the next 30-second TOTP step begins, so a code for the step after is in the window. */
async function nextStep() {
  const wait = 30_000 - (Date.now() % 30_000) + 500;
  await new Promise((r) => setTimeout(r, wait));
}

/** The Certificate Management Center: soft-token set-up, step-up, sign-in with a code, replay refused. */
async function cmc(browser, reference, password) {
  step('CMC: the first sign-in, with the new password and no code, leads to soft-token set-up');
  const page = await newPage(browser, 'cmc');
  await page.goto(`${BASE}/cmc/sign-in`);
  await shot(page, 'cmc-sign-in');
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  let r = await submit(page, '/cmc/sign-in');
  landed(page, r, '/cmc/soft-token');
  await page.selectOption('#algorithm', 'SHA256');
  await page.selectOption('#digits', '8');
  r = await submit(page, '/cmc/soft-token');
  landed(page, r, '/cmc/soft-token');
  assert.ok(await page.isVisible('#qr'), 'the QR code is shown');
  const secret = (await page.textContent('#activation-code')).replace(/\s/g, '');
  assert.match(await page.textContent('#otpauth'), /^otpauth:\/\/totp\/.*algorithm=SHA256.*digits=8/);
  await shot(page, 'cmc-soft-token');
  const code = (later = 0) => totp(secret, { algorithm: 'sha256', digits: 8, later });

  step('the authenticator (oathtool) gives the registration code');
  await page.fill('#registration_code', code());
  r = await submit(page, '/cmc/soft-token/register');
  landed(page, r, '/cmc/recovery-questions');

  step('recovery questions: a wrong code is refused, the next step\'s code is accepted');
  for (const slot of [0, 1]) await page.fill(`#answer_${slot}`, `answer number ${slot}`);
  await page.fill('#code', '00000000');
  r = await submit(page, '/cmc/recovery-questions');
  assert.equal(r.status(), 422);
  assert.ok(await page.isVisible('#questions-error'));
  await shot(page, 'cmc-questions-refused');
  await reloadAfterError(page, 'cmc-questions-refused');
  for (const slot of [0, 1]) await page.fill(`#answer_${slot}`, `answer number ${slot}`);
  const stepUp = code(30);
  await page.fill('#code', stepUp);
  r = await submit(page, '/cmc/recovery-questions');
  landed(page, r, '/cmc/recovery-questions');
  assert.equal(await page.textContent('#notice'), 'Your recovery questions are saved.');
  await shot(page, 'cmc-home');

  step('CMC: signing in again, a used code is refused and a fresh one works');
  await submit(page, '/cmc/sign-out');
  assert.equal(new URL(page.url()).pathname, '/cmc/sign-in');
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  await page.fill('#code', stepUp);
  r = await submit(page, '/cmc/sign-in');
  assert.equal(r.status(), 401);
  assert.match(await page.textContent('#signin-error'), /not correct/);
  await shot(page, 'cmc-sign-in-replayed');
  await reloadAfterError(page, 'cmc-sign-in-replayed');
  await nextStep();
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  await page.fill('#code', code(30));
  r = await submit(page, '/cmc/sign-in');
  landed(page, r, '/cmc');
  assert.match(await page.textContent('main'), /No certificates yet/);
  await shot(page, 'cmc-signed-in');
  r = await page.goto(`${BASE}/cmc/devices`);
  assert.equal(r.status(), 200);
  await shot(page, 'cmc-devices');
  return { page, code };
}

/** The CMC once the certificates are on the token: both listed, the status page says so. */
async function certificates({ page }, reference, password) {
  step('CMC: the identity and encryption certificates are listed');
  const r = await page.goto(`${BASE}/cmc`);
  assert.equal(r.status(), 200);
  const listed = await page.textContent('main');
  assert.doesNotMatch(listed, /No certificates yet/);
  await shot(page, 'cmc-certificates');
  step('the status page (a sign-in of its own) says the certificates are retrieved');
  const status = await newPage(page.context().browser(), 'status-retrieved');
  await status.goto(`${BASE}/applications/${reference}`);
  assert.equal(await status.inputValue('#reference'), reference, 'the sign-in knows the reference');
  await status.fill('#password', password);
  const signedIn = await submit(status, '/applications/sign-in');
  landed(status, signedIn, `/applications/${reference}`);
  assert.equal(await status.textContent('#state'), 'Retrieved');
  await shot(status, 'status-retrieved');
  await status.context().close();
  openPages.delete('status-retrieved');
}

/**
 * A virtual authenticator (the DevTools protocol's WebAuthn domain) in `page`'s browser: a
 * platform authenticator holding discoverable credentials, verifying its user (PIN or
 * fingerprint) until told otherwise.
 */
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
    userVerified: (isUserVerified) => cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified }),
  };
}

/**
 * A look-alike site: another origin (another port of localhost, which the passkey's RP ID
 * covers) relaying every request to the real server, as a phishing proxy does.
 */
function phishingProxy() {
  const target = new URL(BASE);
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Signs in at `page` with the reference, the password and a passkey; returns the response. */
async function passkeySignIn(page, base, reference, password) {
  await page.goto(`${base}/cmc/sign-in`);
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  return clickAndWait(page, '#passkey-sign-in');
}

/**
 * Passkeys: registered in the CMC (confirmed with a code, mailed), then signing in instead of a
 * code; refused without user verification, from a look-alike origin, and with a wrong password.
 */
async function passkeys(browser, { code }, reference, password) {
  step('CMC on localhost: sign in with a code, then add a passkey (a virtual authenticator)');
  const page = await newPage(browser, 'passkeys');
  const device = await virtualAuthenticator(page);
  await nextStep();
  await page.goto(`${LOCAL}/cmc/sign-in`);
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  await page.fill('#code', code(30));
  let r = await submit(page, '/cmc/sign-in');
  landed(page, r, '/cmc');
  r = await page.goto(`${LOCAL}/cmc/passkeys`);
  assert.equal(r.status(), 200);
  assert.match(await page.textContent('#no-passkeys'), /no passkeys yet/);
  await shot(page, 'cmc-passkeys-none');
  await page.fill('#passkey-name', 'Work laptop');
  await nextStep();
  await page.fill('#add-code', code(30));
  r = await submit(page, '/cmc/passkeys');
  landed(page, r, '/cmc/passkeys');
  assert.match(await page.textContent('#notice'), /Your passkey “Work laptop” is added/);
  assert.equal(await page.locator('.passkey-name').allTextContents().then((n) => n.join()), 'Work laptop');
  assert.equal((await device.credentials()).length, 1, 'the authenticator holds the new passkey');
  await shot(page, 'cmc-passkey-added');
  const mail = await waitForMail(APPLICANT.email, /way you sign in .* changed/);
  assert.match(mail.body, /A passkey named “Work laptop” was added/);
  for (const link of mail.body.match(/https?:\/\/\S+/g) ?? []) {
    assert.equal((await page.request.get(link)).status(), 200, `the mail's link ${link} opens a page`);
  }

  step('signing in with the passkey instead of a code');
  await submit(page, '/cmc/sign-out');
  r = await passkeySignIn(page, LOCAL, reference, password);
  landed(page, r, '/cmc');
  await shot(page, 'cmc-signed-in-with-passkey');

  step('a wrong password with the passkey is refused like any wrong sign-in');
  await submit(page, '/cmc/sign-out');
  r = await passkeySignIn(page, LOCAL, reference, `${password}-wrong`);
  assert.equal(r.status(), 401);
  assert.match(await page.textContent('#signin-error'), /not correct/);
  await shot(page, 'cmc-passkey-wrong-password');
  await reloadAfterError(page, 'cmc-passkey-wrong-password');

  step('without user verification (no PIN, no fingerprint) the passkey does not sign in');
  await device.userVerified(false);
  await page.fill('#reference', reference);
  await page.fill('#password', password);
  // The browser itself refuses, since the server asks for user verification.
  await page.click('#passkey-sign-in');
  await page.waitForFunction(() => document.querySelector('[data-passkey-status]').textContent.includes('not used'));
  assert.equal(new URL(page.url()).pathname, '/cmc/sign-in', 'still signed out');
  await shot(page, 'cmc-passkey-unverified');
  // A client that asks the authenticator not to verify (as a relaying tool could) gets a
  // signature without the user-verified flag, which the server refuses like any wrong sign-in.
  const unverified = await page.evaluate(async () => {
    const r = await fetch('/passkey/challenge', { headers: { Accept: 'application/json' } });
    const { options, state } = await r.json();
    options.userVerification = 'discouraged';
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    const form = document.querySelector('form[action="/cmc/sign-in"]');
    for (const [name, value] of [['passkey', JSON.stringify(credential.toJSON())], ['passkey_state', state]]) {
      const input = form.querySelector(`input[name=${name}]`) ?? form.appendChild(Object.assign(document.createElement('input'), { type: 'hidden', name }));
      input.value = value;
    }
    return credential.response.authenticatorData.byteLength > 32
      ? new Uint8Array(credential.response.authenticatorData)[32] & 0x04
      : -1;
  });
  assert.equal(unverified, 0, 'the authenticator did not verify its user');
  r = await submit(page, '/cmc/sign-in');
  assert.equal(r.status(), 401, 'a signature without user verification does not sign in');
  assert.match(await page.textContent('#signin-error'), /not correct/);
  await shot(page, 'cmc-passkey-unverified-refused');
  await device.userVerified(true);

  step('a look-alike site relaying to the real one gets a signature the real one refuses');
  const proxy = await phishingProxy();
  try {
    const phish = `http://localhost:${proxy.address().port}`;
    r = await passkeySignIn(page, phish, reference, password);
    assert.equal(new URL(page.url()).origin, phish);
    assert.equal(r.status(), 401, 'the signature names the look-alike origin');
    assert.match(await page.textContent('#signin-error'), /not correct/);
    await shot(page, 'cmc-passkey-other-origin');
  } finally {
    proxy.close();
  }

  step('signed in with the passkey again, for the secure actions that follow');
  r = await passkeySignIn(page, LOCAL, reference, password);
  landed(page, r, '/cmc');
  return { page, code };
}

/** An operator adds a passkey in the console (confirmed with a code) and signs in with it. */
async function operatorPasskey(browser, operator) {
  step(`console on localhost: ${operator.id} adds a passkey, confirmed with a code`);
  const page = await newPage(browser, 'operator-passkey');
  const device = await virtualAuthenticator(page);
  await page.goto(`${LOCAL}/console/sign-in`);
  await page.fill('#operator', operator.id);
  await page.fill('#password', operator.password);
  await page.fill('#code', totp(operator.secret));
  let r = await submit(page, '/console/sign-in');
  landed(page, r, '/console');
  r = await page.goto(`${LOCAL}/console/passkeys`);
  assert.equal(r.status(), 200);
  await page.fill('#passkey-name', 'Security key 7');
  await page.fill('#add-code', totp(operator.secret, { later: 30 }));
  r = await submit(page, '/console/passkeys');
  landed(page, r, '/console/passkeys');
  assert.match(await page.textContent('#notice'), /“Security key 7” is added/);
  assert.equal((await device.credentials()).length, 1);
  await shot(page, 'console-passkey-added');

  step(`${operator.id} signs in with the passkey instead of a code`);
  await submit(page, '/console/sign-out');
  await page.goto(`${LOCAL}/console/sign-in`);
  await page.fill('#operator', operator.id);
  await page.fill('#password', operator.password);
  r = await clickAndWait(page, '#passkey-sign-in');
  landed(page, r, '/console');
  assert.match(await page.textContent('#operator'), new RegExp(`\\(${operator.id}\\)`));
  await shot(page, 'console-signed-in-with-passkey');
}

/**
 * The token is lost with its PIN: the subscriber revokes one certificate for key compromise, is
 * offered the others on the same token, revokes them too, and is mailed for each.
 */
async function keyCompromise({ page, code }) {
  step('CMC: a wrong code does not revoke; the message says which part failed');
  await page.goto(`${new URL(page.url()).origin}/cmc`);
  const first = page.locator('section.summary', { has: page.locator('form[action$="/revoke"]') }).first();
  const serial = (await first.getAttribute('id')).replace('cert-', '');
  await page.click(`#cert-${serial} summary`);
  await page.selectOption(`#reason-${serial}`, '1');
  await page.fill(`#revoke-code-${serial}`, '00000000');
  let r = await clickAndWait(page, `form[action="/cmc/certificates/${serial}/revoke"] button[type=submit]`);
  assert.equal(r.status(), 422);
  assert.match(await page.textContent(`#error-${serial}`), /authenticator app was not accepted/);
  await shot(page, 'cmc-revoke-refused');
  await reloadAfterError(page, 'cmc-revoke-refused', '/cmc');

  step('CMC: revoked for key compromise, confirmed with the passkey; the other certificates on the token are offered');
  await page.click(`#cert-${serial} summary`);
  await page.selectOption(`#reason-${serial}`, '1');
  r = await clickAndWait(page, `form[action="/cmc/certificates/${serial}/revoke"] [data-passkey-button]`);
  assert.equal(r.status(), 200);
  assert.match(await page.textContent('#compromise'), /Revoke your other certificates too\?/);
  await shot(page, 'cmc-revoked-key-compromise');
  await nextStep();
  await page.fill('#others-code', code(30));
  r = await submit(page, `/cmc/certificates/${serial}/revoke-others`);
  assert.equal(r.status(), 200);
  assert.match(await page.textContent('#notice'), /Also revoked because the key was compromised/);
  assert.match(await page.textContent('main'), /The certificate is revoked: a revoked certificate cannot be renewed; apply for a new one\./);
  await shot(page, 'cmc-all-revoked');
  const revoked = await waitForMail(APPLICANT.email, /revoked/i);
  const links = revoked.body.match(/https?:\/\/\S+/g) ?? [];
  for (const link of links) {
    assert.equal((await page.request.get(link)).status(), 200, `the mail's link ${link} opens a page`);
  }

  step('the renewal guide the expiry reminders link to opens signed out');
  const reader = await newPage(page.context().browser(), 'renewal-guide');
  r = await reader.goto(`${BASE}/cmc/renewal?profile=medium-token-identity`);
  assert.equal(r.status(), 200);
  assert.match(await reader.textContent('#contact'), /Questions\? .*: email .*@.* or call /);
  await shot(reader, 'cmc-renewal-guide');
  await reader.context().close();
  openPages.delete('renewal-guide');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  assert.equal(OPERATORS.length, 2, 'two operators: approval takes two different people');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives every launch a new empty profile (--user-data-dir) of its own. The
    // network flags keep Chromium from calling out: this machine's network is closed.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const applicant = await newPage(browser, 'applicant');
    const reference = await apply(browser, applicant);
    console.log(`  application ${reference}`);
    await verifyEmail(browser, applicant, reference);
    const returning = await signIn(browser, reference);
    const operator = await vet(browser, reference, returning);
    await tokenShipped(returning, reference);
    const password = await resetPassword(browser, reference);
    const subscriber = await cmc(browser, reference, password);
    await retrieve(browser, operator, reference, password);
    await certificates(subscriber, reference, password);
    await keyCompromise(await passkeys(browser, subscriber, reference, password));
    await operatorPasskey(browser, OPERATORS[0]);
  } catch (e) {
    for (const [label, page] of openPages) {
      if (page.isClosed()) continue;
      const file = join(SHOTS, `failure-${label}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`${label} was at ${page.url()}; screenshot ${file}`);
      const text = await page.textContent('main').catch(() => '');
      console.error(`${label} page text:\n${text}`);
    }
    throw e;
  } finally {
    await browser.close();
  }
  console.log(`${shotCount} screenshots in ${SHOTS}`);
}

await main();
