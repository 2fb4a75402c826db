// The webhook verifier against real deliveries: the running Worker POSTs its events to the
// mailbox tests/js_client.rs runs, which keeps each one's headers and raw body as received.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { signup } from '../dist/index.js';
import { verifyWebhook, WebhookVerificationError } from '../dist/webhook.js';
import { env, mailTo, openLink, sleep, turnstileToken } from './support.mjs';

async function deliveries() {
  return (await fetch(`${env.mailbox}/deliveries`)).json();
}

/** The first delivery whose body matches, within `timeoutMs`. */
async function deliveryWhere(match, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await deliveries()).find((d) => match(JSON.parse(d.body)));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such delivery within ${timeoutMs} ms`);
    await sleep(300);
  }
}

test('a delivery from the Worker verifies into a typed event, and a tampered one is refused', async () => {
  const address = 'js.hook@example.com';
  const made = await signup(address, { endpoint: env.worker, turnstileToken: turnstileToken() });
  assert.equal(made.status, 'sent', JSON.stringify(made));
  await openLink(await mailTo(address));
  const delivery = await deliveryWhere((e) => e.type === 'signup.verified' && e.data.email === address);

  const event = verifyWebhook(env.webhookSecret, delivery.headers, delivery.body);
  assert.equal(event.type, 'signup.verified');
  assert.equal(event.data.email, address);
  assert.equal(event.data.messageId, made.messageId);
  assert.equal(event.data.confirmed, false);
  assert.ok(!Number.isNaN(Date.parse(event.data.verifiedAt)), JSON.stringify(event));
  assert.ok(!Number.isNaN(Date.parse(event.timestamp)), JSON.stringify(event));
  // A Fetch Headers and the bytes verify the same (a Worker's request.headers, arrayBuffer()).
  assert.deepEqual(verifyWebhook(env.webhookSecret, new Headers(delivery.headers), new TextEncoder().encode(delivery.body)), event);

  const refused = (headers, body, secret = env.webhookSecret) =>
    assert.throws(() => verifyWebhook(secret, headers, body), WebhookVerificationError);
  refused(delivery.headers, delivery.body.replace(address, 'mallory@example.com'));
  refused(delivery.headers, delivery.body.replace('"confirmed":false', '"confirmed":true'));
  refused(delivery.headers, `${delivery.body} `);
  refused({ ...delivery.headers, 'webhook-timestamp': String(Number(delivery.headers['webhook-timestamp']) + 1) }, delivery.body);
  refused(delivery.headers, delivery.body, `whsec_${Buffer.from('not the key the Worker has').toString('base64')}`);
});
