// Compile-time checks of the public types (`tsc -p test`, in `npm run check`): each
// `@ts-expect-error` fails the check if its line compiles, so a type that widened to `string`,
// `unknown` or `any` (say, after openapi.yaml changed shape) is caught.
import type { ConfirmResult, ErrorCode, SignupResult, SignupStatus } from '../src/index.js';
import type { WebhookEvent } from '../src/webhook.js';

export const codes: ErrorCode[] = ['invalid_email', 'cooldown', 'not_verified', 'unknown_signup', 'invalid_token'];
// @ts-expect-error not an error code of the API
export const notACode: ErrorCode = 'no_such_code';

export const states: SignupStatus['status'][] = ['queued', 'sent', 'verified', 'expired', 'rejected', 'dropped'];
// @ts-expect-error `confirmed` is a flag, not a status
export const notAState: SignupStatus['status'] = 'confirmed';

export function position(result: SignupResult): number | undefined {
  if (result.status === 'queued') return result.position;
  // @ts-expect-error only a queued answer has a position
  if (result.status === 'sent') return result.position;
  return undefined;
}

export function retryAfter(result: SignupResult): number | undefined {
  // @ts-expect-error only an error has retryAfter, so narrow first
  const before = result.retryAfter;
  return result.status === 'error' ? result.retryAfter ?? before : undefined;
}

export function confirmed(result: ConfirmResult): boolean {
  // @ts-expect-error only a confirmed outcome carries the signup
  const early = result.signup;
  return result.outcome === 'confirmed' ? result.signup.confirmed && early !== undefined : false;
}

export function email(event: WebhookEvent): string {
  if (event.type === 'signup.dropped') {
    const reason: 'exhausted' | 'expired' | 'replaced' = event.data.reason;
    return `${event.data.email} ${reason}`;
  }
  // @ts-expect-error not an event type
  if (event.type === 'signup.created') return '';
  return event.data.email;
}
