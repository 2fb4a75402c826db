// The README's two JavaScript snippets, taken from README.md and run as written against the
// real stack: the fetch form's signup-and-wait, and the backend's webhook handler on a real
// delivery (and a tampered one). Only the placeholders are filled in: the endpoint, and the
// free names a page or backend supplies (email, turnstileToken, show, markVerified).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { env, mailTo, openLink, sleep, turnstileToken } from './support.mjs';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const scratch = new URL('./.readme/', import.meta.url);
mkdirSync(scratch, { recursive: true });

/** The README's js block that contains `marker`. */
function block(marker) {
  const blocks = readme.split('```js\n').slice(1).map((rest) => rest.split('\n```')[0]);
  const found = blocks.filter((b) => b.includes(marker));
  assert.equal(found.length, 1, `one js block with ${marker} in README.md`);
  return found[0];
}

/** Writes `source` as a module beside the tests (so its bare imports resolve) and imports it. */
async function load(name, source) {
  const file = new URL(`${name}-${Date.now()}.mjs`, scratch);
  writeFileSync(file, source);
  return import(pathToFileURL(file.pathname).href);
}

test('the README fetch form signs up, shows the answer and waits until the link is opened', async () => {
  const snippet = block('waitForVerification(');
  const [imports, ...rest] = snippet.split('\n\n');
  const body = rest.join('\n\n').replace('"https://signup-verify.<you>.workers.dev"', JSON.stringify(env.worker));
  assert.ok(!body.includes('<you>'), 'the endpoint placeholder was filled in');
  const module = await load(
    'readme-form',
    `${imports}\nexport async function run({ email, turnstileToken, show }) {\n${body}\n}\n`,
  );
  const email = 'readme.form@example.com';
  const shown = [];
  const show = (text) => {
    shown.push(text);
    // The person opens the mail once the page says to.
    if (text === 'Check your inbox') mailTo(email).then(openLink);
  };
  await module.run({ email, turnstileToken: turnstileToken(), show });
  assert.deepEqual(shown, ['Check your inbox', 'verified']);
  // The same snippet shows an error's message and code: the address is in its cooldown now.
  const again = [];
  await module.run({ email, turnstileToken: turnstileToken(), show: (text) => again.push(text) });
  assert.equal(again.length, 1, JSON.stringify(again));
  assert.match(again[0], /\(cooldown\)$/);
});

test('the README webhook handler accepts a real delivery and refuses a tampered one', async () => {
  process.env.WEBHOOK_SECRET = env.webhookSecret;
  const verified = [];
  globalThis.markVerified = async (email) => { verified.push(email); };
  const module = await load('readme-webhook', block('new Webhook('));

  const deliveries = async () => (await fetch(`${env.mailbox}/deliveries`)).json();
  let delivery;
  for (const deadline = Date.now() + 90_000; !delivery; await sleep(300)) {
    delivery = (await deliveries()).find((d) => JSON.parse(d.body).data?.email === 'readme.form@example.com'
      && JSON.parse(d.body).type === 'signup.verified');
    if (Date.now() > deadline) throw new Error('no signup.verified delivery for readme.form@example.com');
  }
  const request = (body) => new Request('https://app.example/hooks/signup', {
    method: 'POST', headers: delivery.headers, body,
  });
  const accepted = await module.onSignupEvent(request(delivery.body));
  assert.equal(accepted.status, 204);
  assert.deepEqual(verified, ['readme.form@example.com']);
  const tampered = await module.onSignupEvent(request(delivery.body.replace('readme.form', 'someone.else')));
  assert.equal(tampered.status, 400);
  assert.deepEqual(verified, ['readme.form@example.com'], 'a tampered delivery marks nobody');
});
