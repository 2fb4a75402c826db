// What the stack tests share: the addresses tests/js_client.rs passes in, fresh Turnstile test
// tokens, and ses-local's outbox (the mails and their links).
import { randomUUID } from 'node:crypto';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: these tests run against a stack that \`cargo test --test js_client\` starts`);
  }
  return value;
}

export const env = {
  /** The Worker, e.g. http://127.0.0.1:8787 */
  get worker() { return required('SV_WORKER'); },
  /** ses-local, with a trailing slash. */
  get ses() { return required('SV_SES'); },
  /** The webhook mailbox (`GET /deliveries`). */
  get mailbox() { return required('SV_MAILBOX'); },
  get webhookSecret() { return required('SV_WEBHOOK_SECRET'); },
  /** The port the example pages are served on (as http://localhost:PORT, in ALLOWED_ORIGINS). */
  get appPort() { return Number(required('SV_APP_PORT')); },
};

/**
 * A Turnstile token ses-local's siteverify stand-in accepts once: Cloudflare's documented dummy
 * token, made unique.
 */
export function turnstileToken() {
  return `XXXX.DUMMY.TOKEN.XXXX.${randomUUID()}`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The custom verification mails ses-local accepted, newest first. */
export async function outbox() {
  const answer = await fetch(`${env.ses}_outbox`, { headers: { accept: 'application/json' } });
  const { messages } = await answer.json();
  return messages.filter((m) => m.kind === 'CustomVerification');
}

/** The mail sent to `address` (waits for it up to `timeoutMs`). */
export async function mailTo(address, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mail = (await outbox()).find((m) => m.emailAddress === address);
    if (mail) return mail;
    if (Date.now() > deadline) throw new Error(`no mail to ${address} within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Opens the mail's link as a person's browser would (ses-local verifies, then redirects). */
export async function openLink(mail) {
  const answer = await fetch(mail.verificationLink, { redirect: 'manual' });
  if (answer.status !== 302) throw new Error(`the link answered ${answer.status}, not 302`);
  return answer.headers.get('location');
}

/** The SendCustomVerificationEmail calls ses-local received, by address. */
export async function sendsTo(address) {
  const answer = await fetch(`${env.ses}_requests`, { headers: { accept: 'application/json' } });
  const { requests } = await answer.json();
  return requests.filter((r) => r.action === 'SendCustomVerificationEmail' && r.emailAddress === address);
}
