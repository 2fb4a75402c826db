// The example pages (examples/plain-form.html and examples/fetch-form.html) in Chromium against
// the real stack. They are served here, as they are in the repository, from
// http://localhost:SV_APP_PORT (an origin in the Worker's ALLOWED_ORIGINS, another site than
// the Worker's 127.0.0.1), with the placeholder Worker URL replaced by the stack's. Turnstile's
// script is routed to test/turnstile-stub.js; the Worker checks its tokens with ses-local's
// siteverify stand-in.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { signup } from '../dist/index.js';
import { launch } from '../../../tests/browser/launch.mjs';
import { env, mailTo, sendsTo, sleep, turnstileToken } from './support.mjs';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const PLACEHOLDER = 'https://signup-verify.YOUR-SUBDOMAIN.workers.dev';
const stub = fs.readFileSync(new URL('./turnstile-stub.js', import.meta.url), 'utf8');
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json' };

/** examples/ and the built client, as a static site would serve them. */
function serveExamples(req, res) {
  const { pathname } = new URL(req.url, 'http://localhost');
  const file = path.join(repo, path.normalize(decodeURIComponent(pathname)));
  const allowed = ['examples', 'clients/js/dist'].some((dir) => file.startsWith(path.join(repo, dir) + path.sep));
  if (!allowed || !fs.existsSync(file)) {
    res.writeHead(404).end('not found');
    return;
  }
  let body = fs.readFileSync(file);
  if (file.endsWith('.html')) {
    const text = body.toString('utf8');
    if (!text.includes(PLACEHOLDER)) {
      res.writeHead(500).end(`${pathname} no longer names the Worker as ${PLACEHOLDER}`);
      return;
    }
    body = text.replaceAll(PLACEHOLDER, env.worker);
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body);
}

const app = `http://localhost:${env.appPort}`;
let server;
let browser;
const turnstileLoads = [];

before(async () => {
  server = http.createServer(serveExamples);
  await new Promise((resolve) => server.listen(env.appPort, '127.0.0.1', resolve));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** A browser context whose pages get the Turnstile stub and record every state of #status. */
async function newContext() {
  const context = await browser.newContext();
  await context.route('https://challenges.cloudflare.com/**', (route) => {
    turnstileLoads.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'text/javascript', body: stub });
  });
  await context.addInitScript(() => {
    window.__states = [];
    new MutationObserver(() => {
      const line = document.getElementById('status');
      const last = window.__states.at(-1);
      const now = { state: line?.dataset.state, position: line?.dataset.position, text: line?.textContent };
      if (now.state && (now.state !== last?.state || now.position !== last?.position)) window.__states.push(now);
    }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  return context;
}

test('the plain form posts with Turnstile\'s field and lands on the success page; a filled honeypot sends nothing', async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${app}/examples/plain-form.html`);
    const field = page.locator('form input[name="cf-turnstile-response"]');
    await field.waitFor({ state: 'attached' });
    assert.match(await field.inputValue(), /^XXXX\.DUMMY\.TOKEN\.XXXX\./);
    assert.equal(await page.locator('input[name="website"]').inputValue(), '');
    await page.getByLabel('Email address').fill('example.plain@example.com');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.waitForURL(/\/examples\/plain-form\.html\?status=(sent|queued)$/, { timeout: 30_000 });
    assert.equal((await sendsTo('example.plain@example.com')).length, 1);
    assert.ok(turnstileLoads.some((u) => !u.includes('render=explicit')), turnstileLoads.join(' '));

    const bot = await context.newPage();
    await bot.goto(`${app}/examples/plain-form.html`);
    await bot.locator('form input[name="cf-turnstile-response"]').waitFor({ state: 'attached' });
    await bot.getByLabel('Email address').fill('example.bot@example.com');
    await bot.locator('input[name="website"]').fill('http://spam.example');
    await bot.getByRole('button', { name: 'Sign up' }).click();
    await bot.waitForURL(/\?status=sent$/, { timeout: 30_000 });
    assert.deepEqual(await sendsTo('example.bot@example.com'), [], 'the honeypot hit is never mailed');
  } finally {
    await context.close();
  }
});

test('the fetch form shows sent, then a queued signup\'s position, waits for the click, and confirms from the mailed link', async () => {
  const context = await newContext();
  try {
    // 1. A lone signup: sent.
    const first = await context.newPage();
    await first.goto(`${app}/examples/fetch-form.html`);
    const signUp = first.getByRole('button', { name: 'Sign up' });
    await first.locator('#signup button:enabled').waitFor();
    const stubState = await first.evaluate(() => window.__turnstileStub);
    assert.equal(stubState.explicit, true, 'Turnstile is rendered explicitly');
    assert.deepEqual(stubState.renders, [{ sitekey: '1x00000000000000000000AA', implicit: false }]);
    assert.ok(turnstileLoads.some((u) => u.includes('render=explicit') && u.includes('onload=')), turnstileLoads.join(' '));
    await first.getByLabel('Email address').fill('example.fetch.sent@example.com');
    await signUp.click();
    await first.locator('#status[data-state="sent"]').waitFor({ timeout: 30_000 });
    assert.match(await first.locator('#status').textContent(), /inbox/);
    await first.close();

    // 2. Behind a burst: queued, with its position; then sent, and verified once the link is
    //    opened and confirmed in this browser.
    const page = await context.newPage();
    await page.goto(`${app}/examples/fetch-form.html`);
    await page.locator('#signup button:enabled').waitFor();
    const burst = Array.from({ length: 8 }, (_, i) =>
      signup(`example.burst${i}@example.com`, { endpoint: env.worker, turnstileToken: turnstileToken() }));
    await Promise.any(burst.map((p) => p.then((r) => (r.status === 'queued' ? r : Promise.reject(new Error(r.status))))));
    const address = 'example.fetch.queued@example.com';
    await page.getByLabel('Email address').fill(address);
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.locator('#status[data-state="queued"]').waitFor({ timeout: 30_000 });
    await Promise.all(burst);

    const mail = await mailTo(address, 60_000);
    const landing = await context.newPage();
    await landing.goto(mail.verificationLink);
    assert.equal(new URL(landing.url()).pathname, '/examples/fetch-form.html');
    assert.equal(await landing.getByRole('heading', { level: 1 }).textContent(), "Your address is verified — confirm it's you");
    const yes = landing.getByRole('button', { name: "Yes, it's me" });
    let outcome;
    for (let attempt = 0; attempt < 5 && outcome !== 'confirmed'; attempt++) {
      if (attempt > 0) await sleep(2_500); // SES is asked at most every 2 s per signup
      await landing.locator('#confirm:enabled').waitFor();
      await yes.click();
      await landing.locator('#status[data-state="confirmed"], #status[data-state="not_verified"]').waitFor();
      outcome = await landing.locator('#status').getAttribute('data-state');
    }
    assert.equal(outcome, 'confirmed');

    await page.locator('#status[data-state="verified"]').waitFor({ timeout: 90_000 });
    const states = await page.evaluate(() => window.__states);
    // Queued first, verified last; `sent` shows if a poll came between the send and the click.
    const order = states.map((s) => s.state).filter((s, i, all) => s !== all[i - 1]);
    assert.ok(['queued,sent,verified', 'queued,verified'].includes(order.join()), JSON.stringify(states));
    const queued = states.find((s) => s.state === 'queued');
    assert.ok(Number(queued.position) >= 1, JSON.stringify(states));
    assert.match(queued.text, new RegExp(`number ${queued.position} in the queue`));
  } finally {
    await context.close();
  }
});
