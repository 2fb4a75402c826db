// The client against a stubbed fetch: what it sends, how it reads each answer, and how
// waitForVerification paces its polls (backoff, Retry-After, abort, timeout). No stack needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Webhook } from 'standardwebhooks';

import { confirm, getStatus, signup, SignupVerifyError, waitForVerification } from '../dist/index.js';
import { verifyWebhook, WebhookVerificationError } from '../dist/webhook.js';

const endpoint = 'https://signup.example/';

/** A fetch that answers from `answers` in turn and records every call with its time. */
function stubFetch(answers) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push({ url: String(url), init, at: performance.now() });
    const next = answers[Math.min(calls.length - 1, answers.length - 1)];
    if (next instanceof Error) throw next;
    const { status = 200, body, headers = {} } = typeof next === 'function' ? next() : next;
    const h = new Headers(headers);
    if (body !== undefined && !h.has('content-type')) h.set('content-type', 'application/json; charset=utf-8');
    return new Response(typeof body === 'string' || body === undefined ? body : JSON.stringify(body), { status, headers: h });
  };
  return { fetch, calls };
}

const error = (code, message = code) => ({ error: { code, message } });
const sent = { status: 'sent', verified: false, confirmed: false, sentAt: '2026-12-01T10:00:03.120Z' };
const verified = { ...sent, status: 'verified', verified: true, verifiedAt: '2026-12-01T10:01:10.450Z' };

test('signup posts JSON with the token and the untouched honeypot, with credentials, and reads sent', async () => {
  const { fetch, calls } = stubFetch([{
    body: { status: 'sent', messageId: 'm-1', statusToken: 't-1' },
    headers: { 'set-cookie': 'sv_confirm=c.k; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax' },
  }]);
  const result = await signup('a@b.io', { endpoint, fetch, turnstileToken: 'tok', honeypot: 'x', honeypotField: 'url' });
  assert.deepEqual(result, { status: 'sent', messageId: 'm-1', statusToken: 't-1', cookie: 'sv_confirm=c.k' });
  assert.equal(calls[0].url, 'https://signup.example/signup');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.credentials, 'include');
  assert.equal(calls[0].init.headers['content-type'], 'application/json');
  assert.equal(calls[0].init.headers.accept, 'application/json');
  assert.deepEqual(JSON.parse(calls[0].init.body), { email: 'a@b.io', turnstileToken: 'tok', url: 'x' });
});

test('signup reads queued with its position, and errors with their code and Retry-After', async () => {
  const { fetch } = stubFetch([
    { status: 202, body: { status: 'queued', position: 3, estimatedSendAt: '2026-12-01T10:00:03.000Z', statusToken: 't' } },
    { status: 429, body: error('cooldown', 'moments ago'), headers: { 'retry-after': '60' } },
    { status: 400, body: error('invalid_email', 'not an address') },
    { status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' } },
    { status: 400, body: { error: { code: 'domain_not_found', message: 'no such domain', suggestion: 'jane@gmail.com' } } },
  ]);
  const queued = await signup('a@b.io', { endpoint, fetch });
  assert.equal(queued.status, 'queued');
  assert.equal(queued.position, 3);
  assert.equal(queued.cookie, undefined);
  assert.deepEqual(await signup('a@b.io', { endpoint, fetch }), {
    status: 'error', httpStatus: 429, code: 'cooldown', message: 'moments ago', retryAfter: 60,
  });
  assert.deepEqual(await signup('nope', { endpoint, fetch }), {
    status: 'error', httpStatus: 400, code: 'invalid_email', message: 'not an address',
  });
  const proxy = await signup('a@b.io', { endpoint, fetch });
  assert.equal(proxy.code, 'unexpected_response');
  assert.equal(proxy.httpStatus, 502);
  assert.deepEqual(await signup('jane@gmial.com', { endpoint, fetch }), {
    status: 'error', httpStatus: 400, code: 'domain_not_found', message: 'no such domain', suggestion: 'jane@gmail.com',
  });
});

test('signup leaves the honeypot out unless given, and a credentials choice is kept', async () => {
  const { fetch, calls } = stubFetch([{ body: { status: 'sent' } }]);
  await signup('a@b.io', { endpoint, fetch, credentials: 'omit' });
  assert.deepEqual(JSON.parse(calls[0].init.body), { email: 'a@b.io' });
  assert.equal(calls[0].init.credentials, 'omit');
});

test('getStatus sends the token as a bearer, without cookies', async () => {
  const { fetch, calls } = stubFetch([{ body: sent }, { status: 401, body: error('invalid_token') }]);
  assert.deepEqual(await getStatus('tok', { endpoint, fetch }), { status: 'ok', signup: sent });
  assert.equal(calls[0].url, 'https://signup.example/signup/status');
  assert.equal(calls[0].init.headers.authorization, 'Bearer tok');
  assert.equal(calls[0].init.credentials, 'omit');
  const refused = await getStatus('tok', { endpoint, fetch });
  assert.equal(refused.code, 'invalid_token');
});

test('waitForVerification honours Retry-After on a 429', async () => {
  const { fetch, calls } = stubFetch([
    { status: 429, body: error('rate_limited'), headers: { 'retry-after': '1' } },
    { body: verified },
  ]);
  const final = await waitForVerification('tok', { endpoint, fetch, initialDelayMs: 10, maxDelayMs: 20 });
  assert.equal(final.status, 'verified');
  assert.equal(calls.length, 2);
  const gap = calls[1].at - calls[0].at;
  assert.ok(gap >= 990, `polled again after ${gap} ms, before Retry-After's second`);
});

test('waitForVerification doubles its pause while nothing changes and starts over on a change', async () => {
  const queued = (position) => ({ status: 'queued', verified: false, confirmed: false, position, estimatedSendAt: '2026-12-01T10:00:03.000Z' });
  const { fetch, calls } = stubFetch([
    { body: queued(2) }, { body: queued(1) }, { body: queued(1) }, { body: queued(1) },
    { body: sent }, { body: verified },
  ]);
  const seen = [];
  const final = await waitForVerification('tok', {
    endpoint, fetch, initialDelayMs: 100, maxDelayMs: 400,
    onProgress: (s) => seen.push(s.position ?? s.status),
  });
  assert.equal(final.status, 'verified');
  assert.deepEqual(seen, [2, 1, 1, 1, 'sent', 'verified']);
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
  // 100, 200, 400, 400 (capped) ±20 %, then 100 again after queued → sent.
  for (const [i, base] of [100, 200, 400, 400, 100].entries()) {
    assert.ok(gaps[i] >= base * 0.8 - 2, `pause ${i} was ${gaps[i]} ms, below ${base} ms - 20 %: ${gaps}`);
  }
  assert.ok(gaps[3] < 400 * 1.2 + 250, `the cap: ${gaps}`);
  assert.ok(gaps[4] < 320, `the pause after a change starts over: ${gaps}`);
});

test('waitForVerification retries 5xx answers and network failures, and stops on other errors', async () => {
  const { fetch, calls } = stubFetch([
    { status: 503, body: error('unavailable') },
    new TypeError('fetch failed'),
    { body: verified },
  ]);
  assert.equal((await waitForVerification('tok', { endpoint, fetch, initialDelayMs: 5 })).status, 'verified');
  assert.equal(calls.length, 3);

  const gone = stubFetch([{ status: 404, body: error('unknown_signup', 'no longer there') }]);
  await assert.rejects(waitForVerification('tok', { endpoint, fetch: gone.fetch, initialDelayMs: 5 }), (e) => {
    assert.ok(e instanceof SignupVerifyError);
    assert.equal(e.code, 'unknown_signup');
    assert.equal(e.httpStatus, 404);
    assert.equal(e.message, 'no longer there');
    return true;
  });
  assert.equal(gone.calls.length, 1);
});

test('waitForVerification resolves on every final status, and waits for a confirmation when asked', async () => {
  for (const status of ['expired', 'rejected', 'dropped']) {
    const { fetch } = stubFetch([{ body: sent }, { body: { ...sent, status, reason: status === 'dropped' ? 'replaced' : undefined } }]);
    assert.equal((await waitForVerification('tok', { endpoint, fetch, initialDelayMs: 5 })).status, status);
  }
  const answers = [{ body: verified }, { body: { ...verified, confirmed: true } }];
  assert.equal((await waitForVerification('tok', { endpoint, fetch: stubFetch(answers).fetch, initialDelayMs: 5 })).confirmed, false);
  const both = stubFetch(answers);
  const final = await waitForVerification('tok', { endpoint, fetch: both.fetch, initialDelayMs: 5, until: 'confirmed' });
  assert.equal(final.confirmed, true);
  assert.equal(both.calls.length, 2);
});

test('waitForVerification stops when aborted and when its timeout passes', async () => {
  const { fetch } = stubFetch([{ body: sent }]);
  const controller = new AbortController();
  const started = performance.now();
  setTimeout(() => controller.abort(new Error('the person left')), 50);
  await assert.rejects(
    waitForVerification('tok', { endpoint, fetch, initialDelayMs: 10_000, signal: controller.signal }),
    { message: 'the person left' },
  );
  await assert.rejects(
    waitForVerification('tok', { endpoint, fetch, initialDelayMs: 10_000, timeoutMs: 100 }),
    { name: 'TimeoutError' },
  );
  assert.ok(performance.now() - started < 5_000, 'both stopped long before the next poll');
  const already = new AbortController();
  already.abort(new Error('before'));
  await assert.rejects(waitForVerification('tok', { endpoint, fetch, signal: already.signal }), { message: 'before' });
});

test('confirm sends the cookie and the Turnstile token, and tells each outcome apart', async () => {
  const { fetch, calls } = stubFetch([
    { body: { ...verified, confirmed: true } },
    { status: 409, body: error('not_verified', 'open the link first') },
    { status: 404, body: error('unknown_signup', 'no signup') },
    { status: 403, body: error('captcha_failed', 'captcha') },
  ]);
  const options = { endpoint, fetch, cookie: 'sv_confirm=c.k', turnstileToken: 'tok' };
  assert.deepEqual(await confirm(options), { outcome: 'confirmed', signup: { ...verified, confirmed: true } });
  assert.equal(calls[0].url, 'https://signup.example/confirm');
  assert.equal(calls[0].init.credentials, 'include');
  assert.equal(calls[0].init.headers.cookie, 'sv_confirm=c.k');
  assert.deepEqual(JSON.parse(calls[0].init.body), { turnstileToken: 'tok' });
  assert.deepEqual(await confirm(options), { outcome: 'not_verified', message: 'open the link first' });
  assert.deepEqual(await confirm(options), { outcome: 'unknown_signup', message: 'no signup' });
  assert.deepEqual(await confirm(options), { outcome: 'error', httpStatus: 403, code: 'captcha_failed', message: 'captcha' });
  const bare = stubFetch([{ status: 409, body: error('not_verified') }]);
  await confirm({ endpoint, fetch: bare.fetch });
  assert.equal(bare.calls[0].init.body, undefined);
  assert.equal(bare.calls[0].init.headers.cookie, undefined);
});

test('verifyWebhook returns a signed event and refuses a tampered body, a wrong key or an old timestamp', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const body = '{"type":"signup.verified","timestamp":"2026-12-01T10:01:10.450Z","data":{"email":"jane@example.com","confirmed":false,"verifiedAt":"2026-12-01T10:01:10.450Z"}}';
  const sign = (at, payload = body, key = secret) => ({
    'webhook-id': 'msg_1',
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(key).sign('msg_1', at, payload),
  });
  const headers = sign(new Date());
  const event = verifyWebhook(secret, headers, body);
  assert.equal(event.type, 'signup.verified');
  assert.equal(event.data.email, 'jane@example.com');
  assert.equal(verifyWebhook(secret, new Headers(headers), new TextEncoder().encode(body)).type, 'signup.verified');
  // Node's req.headers may hold arrays; names in any case.
  assert.equal(verifyWebhook(secret, { 'Webhook-Id': 'msg_1', 'webhook-timestamp': headers['webhook-timestamp'], 'webhook-signature': ['v1,bogus', headers['webhook-signature']] }, body).type, 'signup.verified');
  const refused = (h, b) => assert.throws(() => verifyWebhook(secret, h, b), WebhookVerificationError);
  refused(headers, body.replace('jane@', 'mallory@'));
  refused(sign(new Date(), body, 'whsec_' + Buffer.from('another key of 24 bytes!').toString('base64')), body);
  refused(sign(new Date(Date.now() - 10 * 60_000)), body);
  refused({ ...headers, 'webhook-id': 'msg_2' }, body);
  refused({}, body);
});
