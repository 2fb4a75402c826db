// Verifying the Worker's webhook deliveries (Standard Webhooks: `webhook-id`,
// `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`) with the official
// `standardwebhooks` library, for Node and Workers alike. A separate entry point
// (`@signup-verify/client/webhook`), so that a browser bundle of the client never carries it.
//
// Each event's type is the one openapi.yaml's `webhooks:` section describes, when it has one
// (by the event's name, e.g. `webhooks["signup.verified"]`); while it has none, the type
// written here from the Worker's src/gate/webhook.rs and src/gate/tracking.rs (the reasons
// from openapi.yaml's status schema) stands in.
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

import type { webhooks } from './openapi.js';
import type { SignupReason } from './types.js';

export { WebhookVerificationError };

/** What every event tells about its signup. */
export interface SignupEventData {
  /** The address as it was signed up (only your backend gets it; the Worker's log never does). */
  email: string;
  /** Whether a person confirmed in the signing-up browser (`/confirm`). */
  confirmed: boolean;
  /** SES's MessageId of the verification mail; absent when the mail never went out. */
  messageId?: string;
  /** When the link was found opened (RFC 3339). */
  verifiedAt?: string;
  /**
   * There only when true: this signup replaced another signup of the address whose link was
   * still open (docs/security.md).
   */
  contested?: true;
}

interface Event<Type extends string, Data> {
  type: Type;
  /** When it happened (RFC 3339). */
  timestamp: string;
  data: SignupEventData & Data;
}

/** The JSON body of a request, if it has one. */
type JsonOf<Body> = Body extends { content: { 'application/json': infer Json } } ? Json : never;

/** openapi.yaml's body of the webhook `Type`; `never` while the document describes no webhooks. */
type SpecEvent<Type extends string> = string extends keyof webhooks
  ? never
  : Type extends keyof webhooks
    ? webhooks[Type] extends { post: { requestBody?: infer Body } }
      ? JsonOf<NonNullable<Body>>
      : never
    : never;

/** The event as openapi.yaml describes it, else as written here. */
type Described<Type extends string, Written> = [SpecEvent<Type>] extends [never] ? Written : SpecEvent<Type>;

/** The link in the mail was opened. */
export type SignupVerifiedEvent = Described<'signup.verified', Event<'signup.verified', { verifiedAt: string }>>;
/** A person confirmed in the signing-up browser, after the link was opened. */
export type SignupConfirmedEvent = Described<
  'signup.confirmed',
  Event<'signup.confirmed', { confirmed: true; verifiedAt: string }>
>;
/**
 * The link was not opened in time; `reason` `unchecked` when SES could not be asked, or
 * `already_verified` when the address was verified before the signup.
 */
export type SignupExpiredEvent = Described<
  'signup.expired',
  Event<'signup.expired', { reason?: Extract<SignupReason, 'unchecked' | 'already_verified'> }>
>;
/** SES refused the address. */
export type SignupRejectedEvent = Described<'signup.rejected', Event<'signup.rejected', { reason?: SignupReason }>>;
/** The signup left the queue unsent, or a newer signup of the address replaced it. */
export type SignupDroppedEvent = Described<
  'signup.dropped',
  Event<'signup.dropped', { reason: Extract<SignupReason, 'exhausted' | 'expired' | 'replaced'> }>
>;

/** One delivery's body; tell the events apart by `type`. */
export type WebhookEvent =
  | SignupVerifiedEvent
  | SignupConfirmedEvent
  | SignupExpiredEvent
  | SignupRejectedEvent
  | SignupDroppedEvent;

export type WebhookEventType = WebhookEvent['type'];

/** A Fetch `Headers` (Workers, Deno, Node's fetch), or a plain object such as Node's `req.headers`. */
export type HeadersLike = Headers | Record<string, string | readonly string[] | undefined>;

/**
 * Verifies one delivery and returns its event. `secret` is the Worker's `WEBHOOK_SECRET`
 * (`whsec_…`); `rawBody` must be the body exactly as received (a string or the bytes), before
 * any JSON parsing. Throws a {@link WebhookVerificationError} when a header is missing, the
 * signature does not match, or the timestamp is more than five minutes off; then answer 4xx and
 * ignore the body. Deliveries come at least once: dedupe on the `webhook-id` header.
 */
export function verifyWebhook(secret: string, headers: HeadersLike, rawBody: string | Uint8Array): WebhookEvent {
  const event = new Webhook(secret).verify(rawBody, plain(headers));
  if (typeof event !== 'object' || event === null || typeof (event as { type?: unknown }).type !== 'string') {
    throw new WebhookVerificationError('The signed body is not a signup event');
  }
  return event as WebhookEvent;
}

function plain(headers: HeadersLike): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof (headers as Headers).forEach === 'function' && typeof (headers as Headers).get === 'function') {
    (headers as Headers).forEach((value, name) => {
      out[name.toLowerCase()] = value;
    });
    return out;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = typeof value === 'string' ? value : value.join(' ');
  }
  return out;
}
