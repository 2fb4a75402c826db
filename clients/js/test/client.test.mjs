// The client against the real stack (wrangler dev + ses-local, Turnstile on, slots every
// 500 ms, a signup waits at most 1.2 s for one): tests/js_client.rs starts it and runs these.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { confirm, signup, SignupVerifyError, waitForVerification } from '../dist/index.js';
import { env, mailTo, openLink, sendsTo, turnstileToken } from './support.mjs';

const options = () => ({ endpoint: env.worker, turnstileToken: turnstileToken() });
// Quicker polls than a page's defaults: the stack's sweep finds a click within seconds.
const polling = () => ({ endpoint: env.worker, initialDelayMs: 300, maxDelayMs: 2_000, timeoutMs: 90_000 });

test('a lone signup is sent, with a status token and the confirmation cookie', async () => {
  const result = await signup('js.sent@example.com', options());
  assert.equal(result.status, 'sent', JSON.stringify(result));
  assert.match(result.messageId, /\S/);
  assert.match(result.statusToken, /\S/);
  // Node may read Set-Cookie: the loopback Worker's cookie, as name=value only.
  assert.match(result.cookie, /^sv_confirm=[^;\s]+$/);
  const [send] = await sendsTo('js.sent@example.com');
  assert.equal(send?.status, 200, 'ses-local received the send');
});

test('a burst is partly queued, each queued signup with its own position and a token', async () => {
  const addresses = Array.from({ length: 8 }, (_, i) => `js.burst${i}@example.com`);
  const results = await Promise.all(addresses.map((a) => signup(a, options())));
  const queued = results.filter((r) => r.status === 'queued');
  const sent = results.filter((r) => r.status === 'sent');
  assert.equal(queued.length + sent.length, addresses.length, JSON.stringify(results));
  assert.ok(sent.length >= 1 && queued.length >= 3, JSON.stringify(results));
  const positions = queued.map((r) => r.position).sort((a, b) => a - b);
  assert.ok(positions.every((p) => Number.isInteger(p) && p >= 1), `${positions}`);
  assert.equal(new Set(positions).size, positions.length, `distinct positions: ${positions}`);
  for (const r of queued) {
    assert.match(r.statusToken, /\S/);
    assert.match(r.cookie, /^sv_confirm=/);
    assert.ok(!Number.isNaN(Date.parse(r.estimatedSendAt)), r.estimatedSendAt);
  }

  // The last in line: progress shows it queued, then sent; the click makes it verified.
  const last = queued.reduce((a, b) => (b.position > a.position ? b : a));
  const address = addresses[results.indexOf(last)];
  const seen = [];
  const waiting = waitForVerification(last.statusToken, { ...polling(), onProgress: (s) => seen.push(s) });
  await openLink(await mailTo(address));
  const final = await waiting;
  assert.equal(final.status, 'verified');
  assert.equal(final.verified, true);
  assert.ok(!Number.isNaN(Date.parse(final.verifiedAt)), JSON.stringify(final));
  // Every poll was reported, in the signup's order: queued (with a position), maybe sent (if a
  // poll came between the send and the click), verified.
  assert.equal(seen[0].status, 'queued', JSON.stringify(seen));
  assert.ok(seen.filter((s) => s.status === 'queued').every((s) => s.position >= 1), JSON.stringify(seen));
  const order = seen.map((s) => s.status).filter((s, i, all) => s !== all[i - 1]);
  assert.ok(['queued,sent,verified', 'queued,verified'].includes(order.join()), JSON.stringify(seen));
  assert.deepEqual(seen.at(-1), final);
});

test('refusals come back as errors with their code, and cooldown with Retry-After', async () => {
  const invalid = await signup('not-an-address', options());
  assert.deepEqual(
    { status: invalid.status, httpStatus: invalid.httpStatus, code: invalid.code, retryAfter: invalid.retryAfter },
    { status: 'error', httpStatus: 400, code: 'invalid_email', retryAfter: undefined },
  );
  assert.match(invalid.message, /\S/);

  const noToken = await signup('js.robot@example.com', { endpoint: env.worker });
  assert.equal(noToken.code, 'captcha_failed');
  assert.equal(noToken.httpStatus, 403);

  const first = await signup('js.twice@example.com', options());
  assert.ok(first.status === 'sent' || first.status === 'queued', JSON.stringify(first));
  const again = await signup('js.twice@example.com', options());
  assert.equal(again.status, 'error');
  assert.equal(again.httpStatus, 429);
  assert.equal(again.code, 'cooldown');
  assert.equal(again.retryAfter, 60, 'EMAIL_COOLDOWN_SECONDS, the whole window');
  assert.equal(again.cookie, undefined);
  assert.equal((await sendsTo('js.twice@example.com')).length, 1, 'the second never reached SES');
});

test('confirm is refused before the link is opened and recorded after it, with the signup cookie', async () => {
  const address = 'js.confirm@example.com';
  const made = await signup(address, options());
  assert.equal(made.status, 'sent', JSON.stringify(made));
  const early = await confirm({ ...options(), cookie: made.cookie });
  assert.deepEqual(early.outcome, 'not_verified', JSON.stringify(early));
  const noCookie = await confirm(options());
  assert.equal(noCookie.outcome, 'unknown_signup', JSON.stringify(noCookie));
  const unconfirmed = await waitForVerification(made.statusToken, { ...polling(), timeoutMs: 1_500 }).catch((e) => e);
  assert.equal(unconfirmed.name, 'TimeoutError', 'not verified before the click');

  await openLink(await mailTo(address));
  const verified = await waitForVerification(made.statusToken, polling());
  assert.deepEqual([verified.status, verified.confirmed], ['verified', false]);

  const done = await confirm({ ...options(), cookie: made.cookie });
  assert.equal(done.outcome, 'confirmed', JSON.stringify(done));
  assert.equal(done.signup.status, 'verified');
  assert.equal(done.signup.confirmed, true);
  const confirmed = await waitForVerification(made.statusToken, { ...polling(), until: 'confirmed' });
  assert.equal(confirmed.confirmed, true);
});

test('waitForVerification rejects a forged token with the Worker\'s code', async () => {
  await assert.rejects(waitForVerification('forged.token', polling()), (e) => {
    assert.ok(e instanceof SignupVerifyError, String(e));
    assert.deepEqual([e.httpStatus, e.code], [401, 'invalid_token']);
    return true;
  });
});
