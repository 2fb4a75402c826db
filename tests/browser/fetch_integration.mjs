// A single-page site on another origin (http://localhost:PORT, served here) that signs up with
// `fetch` to the Worker (http://127.0.0.1:PORT) and confirms from its own page, in Debian's
// Chromium: the page signs up (credentials: "include"), tries to confirm before the link is
// opened (refused), then the person opens the mailed link, ses-local verifies it and redirects
// to the site's own /verified page, whose script confirms with the cookie its signup set.
// Usage: node fetch_integration.mjs <worker> <ses-local> <email> <app-port>.
// Prints one JSON line with what each step answered.
import fs from 'node:fs';
import http from 'node:http';
import { launch } from './launch.mjs';

const [worker, ses, email, appPort] = process.argv.slice(2);

// The site's two pages run the two `js` blocks of docs/security.md as written there, with the
// documented Worker origin replaced by the one under test. /verified is the template's
// SuccessRedirectionURL.
const doc = fs.readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
const blocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1].replaceAll('https://signup.example', worker));
if (blocks.length !== 2) throw new Error(`docs/security.md has ${blocks.length} js blocks, not 2`);
const page = (script) => `<!doctype html><meta charset="utf-8"><title>app</title>
<pre id="out"></pre><script>${script}</script>`;
const signupScript = `${blocks[0]}\n${blocks[1]}\nwindow.signUp = signUp; window.confirmNow = confirmNow;`;
const verifiedScript = `${signupScript}
confirmNow().then((answer) => {
  document.getElementById('out').textContent = JSON.stringify(answer);
  document.getElementById('out').dataset.done = 'yes';
});`;
const app = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(page(req.url.startsWith('/verified') ? verifiedScript : signupScript));
});
await new Promise((resolve) => app.listen(Number(appPort), '127.0.0.1', resolve));

const browser = await launch();
const result = {};
try {
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(`http://localhost:${appPort}/`);
  result.signup = await tab.evaluate((address) => window.signUp(address), email);
  result.early = await tab.evaluate(() => window.confirmNow());
  // SES is asked at once at most every 2 s per signup (CONFIRM_CHECK_GAP_MS).
  await new Promise((r) => setTimeout(r, 2100));
  let link;
  for (let i = 0; i < 100 && !link; i++) {
    const outbox = await (await fetch(`${ses}_outbox`, { headers: { accept: 'application/json' } })).json();
    link = outbox.messages.find((m) => m.emailAddress === email)?.verificationLink;
    if (!link) await new Promise((r) => setTimeout(r, 200));
  }
  await tab.goto(link);
  result.landedOn = tab.url();
  await tab.locator('#out[data-done="yes"]').waitFor({ timeout: 20000 });
  result.confirmed = JSON.parse(await tab.locator('#out').textContent());
  // Another site's page in the same browser holds no cookie of this signup.
  const other = await context.newPage();
  await other.goto(`http://127.0.0.1:${appPort}/`);
  result.otherSite = await other.evaluate(() => window.confirmNow().catch((e) => ({ error: String(e) })));
  await context.close();
} finally {
  await browser.close();
  app.close();
}
console.log(JSON.stringify(result));
