// The browser side of signup-verify: sign up, follow the signup until the link in the mail was
// opened, and confirm it from the signing-up browser. No dependencies: `fetch`, `AbortSignal`
// and `setTimeout` are all it uses, so it runs in browsers, Node 18+, Deno and Workers.
import type {
  ConfirmedBody,
  ErrorCode,
  FinalState,
  QueuedBody,
  SentBody,
  SignupState,
  SignupStatus,
} from './types.js';

export type * from './types.js';

/** What every call needs: where the Worker answers, and optionally a `fetch` of your own. */
export interface ClientOptions {
  /**
   * The Worker's origin, e.g. `"https://signup-verify.example.workers.dev"` (a trailing slash is
   * fine). The client appends `/signup`, `/signup/status` or `/confirm`.
   */
  endpoint: string | URL;
  /** Defaults to `globalThis.fetch`. Pass one with a cookie jar on a server, or a stub in tests. */
  fetch?: typeof globalThis.fetch;
  /** Cancels the call: it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link signup}. */
export interface SignupOptions extends ClientOptions {
  /** Turnstile's token (the widget's callback argument, or its `cf-turnstile-response` field). */
  turnstileToken?: string;
  /**
   * The honeypot field's value as the form holds it (a person leaves it empty). It is sent
   * untouched, so that a bot which filled it in gets the Worker's decoy answer.
   */
  honeypot?: string;
  /** The honeypot field's name, the Worker's `HONEYPOT_FIELD`. Default `"website"`. */
  honeypotField?: string;
  /**
   * Default `"include"`: a browser then keeps the HttpOnly confirmation cookie the answer sets,
   * which {@link confirm} needs. Cross-origin this needs your origin listed by name in
   * `ALLOWED_ORIGINS`; with `ALLOWED_ORIGINS=*` pass `"omit"` (and confirmation is unavailable).
   */
  credentials?: RequestCredentials;
}

/**
 * The confirmation cookie as `name=value`, where the runtime lets code read `Set-Cookie` (Node,
 * Deno, Workers: never a browser, which keeps it itself). Pass it to {@link confirm} as `cookie`.
 */
export interface WithCookie {
  cookie?: string;
}

/** `200`: SES accepted the call. */
export type SignupSent = SentBody & WithCookie;
/** `202`: the signup waits in the gate's durable queue at `position` and will be sent in turn. */
export type SignupQueued = QueuedBody & WithCookie;

/** An error answer, or an answer outside the contract (a proxy's page: `unexpected_response`). */
export interface Failure {
  status: 'error';
  /** The HTTP status (`0` never happens: a network failure rejects instead). */
  httpStatus: number;
  code: ErrorCode | 'unexpected_response';
  message: string;
  /** Seconds to wait before trying again, from `Retry-After` (429 and 503 answers). */
  retryAfter?: number;
  /**
   * The fixed address a refusal of the address checks offers for a typo of a popular mail domain
   * (`jane@gmail.com` for `jane@gmial.com`): offer it to the person, never send it unasked.
   */
  suggestion?: string;
}

/** What {@link signup} resolves to; tell the cases apart by `status`. */
export type SignupResult = SignupSent | SignupQueued | Failure;

/** Options of {@link confirm}. */
export interface ConfirmOptions extends ClientOptions {
  /** Turnstile's token, when the Worker has `TURNSTILE_SECRET_KEY` (a fresh one: tokens are single-use). */
  turnstileToken?: string;
  /**
   * The signup's cookie (`name=value`, from {@link signup}'s `cookie`), sent as `Cookie` by
   * runtimes that allow it. A browser sends its own and ignores this.
   */
  cookie?: string;
  /** Default `"include"`: the browser sends the cookie the signup's answer set. */
  credentials?: RequestCredentials;
}

/** What {@link confirm} resolves to; tell the cases apart by `outcome`. */
export type ConfirmResult =
  | { outcome: 'confirmed'; signup: ConfirmedBody }
  /** The link in the mail has not been opened yet; nothing was recorded. Ask again later. */
  | { outcome: 'not_verified'; message: string }
  /** This browser holds no current signup (no cookie, another browser, or a newer signup replaced it). */
  | { outcome: 'unknown_signup'; message: string }
  | ({ outcome: 'error' } & Omit<Failure, 'status'>);

/** Options of {@link waitForVerification}. */
export interface WaitOptions extends ClientOptions {
  /**
   * `"verified"` (default): resolve once the link was opened (or the signup ended otherwise).
   * `"confirmed"`: keep polling a verified signup until a person confirmed it too.
   */
  until?: 'verified' | 'confirmed';
  /** Give up after this many milliseconds: rejects with a `TimeoutError` DOMException. Default: never. */
  timeoutMs?: number;
  /** The first pause between polls. Default 2000 ms; it doubles after every unchanged answer. */
  initialDelayMs?: number;
  /** The longest pause between polls. Default 30000 ms. */
  maxDelayMs?: number;
  /** Called with every status the Worker answers (a queued signup's `position`, `sent`, …). */
  onProgress?: (status: SignupStatus) => void;
}

/** A final status: what {@link waitForVerification} resolves to. */
export type FinalStatus = SignupStatus & { status: FinalState };

/**
 * An error answer that waiting cannot get past (`invalid_token`, `token_expired`,
 * `unknown_signup`, `status_off`, `origin_not_allowed`, …): what {@link waitForVerification}
 * rejects with.
 */
export class SignupVerifyError extends Error {
  readonly code: Failure['code'];
  readonly httpStatus: number;
  readonly retryAfter?: number;

  constructor(failure: Omit<Failure, 'status'>) {
    super(failure.message);
    this.name = 'SignupVerifyError';
    this.code = failure.code;
    this.httpStatus = failure.httpStatus;
    if (failure.retryAfter !== undefined) this.retryAfter = failure.retryAfter;
  }
}

/** The cookie names the Worker's signup answer may set (`sv_confirm` on plain-http loopback). */
const COOKIE_NAMES = ['__Host-sv_confirm', 'sv_confirm'];
const FINAL: readonly SignupState[] = ['verified', 'expired', 'rejected', 'dropped'];

/**
 * `POST /signup` with a JSON body. Resolves to the answer (`sent`, `queued`, or an `error` with
 * its code and `retryAfter`); rejects only when the Worker could not be reached or the call was
 * aborted.
 */
export async function signup(email: string, options: SignupOptions): Promise<SignupResult> {
  const body: Record<string, string> = { email };
  if (options.turnstileToken !== undefined) body.turnstileToken = options.turnstileToken;
  if (options.honeypot !== undefined) body[options.honeypotField ?? 'website'] = options.honeypot;
  const response = await call(options, '/signup', {
    method: 'POST',
    credentials: options.credentials ?? 'include',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await readJson(response);
  const cookie = confirmationCookie(response);
  const withCookie = cookie === undefined ? {} : { cookie };
  if (response.status === 200 && isRecord(json) && json.status === 'sent') {
    return { ...(json as SentBody), ...withCookie };
  }
  if (response.status === 202 && isRecord(json) && json.status === 'queued') {
    return { ...(json as QueuedBody), ...withCookie };
  }
  return failure(response, json);
}

/**
 * One `GET /signup/status` with the signup's token: the status, or the failure. (What
 * {@link waitForVerification} repeats.)
 */
export async function getStatus(
  statusToken: string,
  options: ClientOptions,
): Promise<{ status: 'ok'; signup: SignupStatus } | Failure> {
  // The token is a bearer credential: no cookie goes along (the Worker answers this endpoint
  // without Access-Control-Allow-Credentials).
  const response = await call(options, '/signup/status', {
    method: 'GET',
    credentials: 'omit',
    headers: { authorization: `Bearer ${statusToken}`, accept: 'application/json' },
  });
  const json = await readJson(response);
  if (response.status === 200 && isRecord(json) && typeof json.status === 'string') {
    return { status: 'ok', signup: json as SignupStatus };
  }
  return failure(response, json);
}

/**
 * Polls `GET /signup/status` until the signup's status is final (`verified`, `expired`,
 * `rejected` or `dropped`; with `until: "confirmed"`, a verified signup must also be
 * confirmed), and resolves to that status. The pause between polls starts at
 * `initialDelayMs`, doubles while nothing changes up to `maxDelayMs`, varies by ±20 % so that
 * many pages do not poll in step, starts over when the status changes, and is at least what a
 * `429`'s or `503`'s `Retry-After` asks for. Network failures and 5xx answers are retried the
 * same way. Rejects with a {@link SignupVerifyError} on an answer that retrying cannot change
 * (an invalid or expired token, a signup the gate no longer has), with the signal's reason when
 * aborted, and with a `TimeoutError` after `timeoutMs`.
 */
export async function waitForVerification(
  statusToken: string,
  options: WaitOptions,
): Promise<FinalStatus> {
  const initial = options.initialDelayMs ?? 2_000;
  const max = Math.max(options.maxDelayMs ?? 30_000, initial);
  const until = options.until ?? 'verified';
  new URL(`${String(options.endpoint).replace(/\/+$/, '')}/signup/status`); // a bad endpoint throws here, not in every poll
  const { signal, cancel } = combine(options.signal, options.timeoutMs);
  try {
    let delay = initial;
    let last: string | undefined;
    for (;;) {
      signal.throwIfAborted();
      let answer: Awaited<ReturnType<typeof getStatus>> | undefined;
      try {
        answer = await getStatus(statusToken, { ...options, signal });
      } catch (error) {
        // Aborted (or timed out): stop. A TypeError is the network: try again.
        signal.throwIfAborted();
        if (!(error instanceof TypeError)) throw error;
      }
      let floor = 0;
      if (answer?.status === 'ok') {
        const current = answer.signup;
        options.onProgress?.(current);
        const done =
          FINAL.includes(current.status) &&
          (until === 'verified' || current.status !== 'verified' || current.confirmed);
        if (done) return current as FinalStatus;
        const seen = `${current.status}/${String(current.confirmed)}`;
        if (seen !== last) {
          last = seen;
          delay = initial;
        }
      } else if (answer !== undefined) {
        if (answer.httpStatus !== 429 && answer.httpStatus < 500) throw new SignupVerifyError(answer);
        floor = (answer.retryAfter ?? 0) * 1000;
      }
      await sleep(Math.max(jitter(delay), floor), signal);
      delay = Math.min(delay * 2, max);
    }
  } finally {
    cancel();
  }
}

/**
 * `POST /confirm` from the signing-up browser (with its cookie, and Turnstile's token when the
 * Worker requires one): `confirmed` with the signup's status once the link in the mail was
 * opened; `not_verified` before that (nothing is recorded: ask again after the click);
 * `unknown_signup` when this browser holds no current signup. Rejects only when the Worker
 * could not be reached or the call was aborted.
 */
export async function confirm(options: ConfirmOptions): Promise<ConfirmResult> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.cookie !== undefined) headers.cookie = options.cookie;
  const init: RequestInit = {
    method: 'POST',
    credentials: options.credentials ?? 'include',
    headers,
  };
  if (options.turnstileToken !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify({ turnstileToken: options.turnstileToken });
  }
  const response = await call(options, '/confirm', init);
  const json = await readJson(response);
  if (response.status === 200 && isRecord(json) && typeof json.status === 'string') {
    return { outcome: 'confirmed', signup: json as ConfirmedBody };
  }
  const failed = failure(response, json);
  if (failed.code === 'not_verified' || failed.code === 'unknown_signup') {
    return { outcome: failed.code, message: failed.message };
  }
  const { httpStatus, code, message, retryAfter } = failed;
  return retryAfter === undefined
    ? { outcome: 'error', httpStatus, code, message }
    : { outcome: 'error', httpStatus, code, message, retryAfter };
}

function call(options: ClientOptions, path: string, init: RequestInit): Promise<Response> {
  const base = String(options.endpoint).replace(/\/+$/, '');
  const fetcher = options.fetch ?? globalThis.fetch;
  if (options.signal) init.signal = options.signal;
  return fetcher(`${base}${path}`, init);
}

async function readJson(response: Response): Promise<unknown> {
  if (!(response.headers.get('content-type') ?? '').includes('application/json')) return undefined;
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function failure(response: Response, json: unknown): Failure {
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
  const error = isRecord(json) && isRecord(json.error) ? json.error : undefined;
  const found: Failure =
    error && typeof error.code === 'string' && typeof error.message === 'string'
      ? { status: 'error', httpStatus: response.status, code: error.code as ErrorCode, message: error.message }
      : {
          status: 'error',
          httpStatus: response.status,
          code: 'unexpected_response',
          message: `unexpected answer from the Worker: HTTP ${response.status}`,
        };
  if (retryAfter !== undefined) found.retryAfter = retryAfter;
  if (error && typeof error.suggestion === 'string') found.suggestion = error.suggestion;
  return found;
}

/** `Retry-After` in seconds: delta-seconds, or an HTTP date. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function confirmationCookie(response: Response): string | undefined {
  const headers = response.headers;
  const all =
    typeof headers.getSetCookie === 'function'
      ? headers.getSetCookie()
      : (headers.get('set-cookie') ?? '').split(/,(?=\s*[^;=,\s]+=)/);
  for (const line of all) {
    const pair = line.split(';')[0]?.trim() ?? '';
    const name = pair.slice(0, pair.indexOf('='));
    if (COOKIE_NAMES.includes(name)) return pair;
  }
  return undefined;
}

function jitter(ms: number): number {
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** One signal for the caller's signal and the timeout; `cancel` clears the timer. */
function combine(outer: AbortSignal | undefined, timeoutMs: number | undefined) {
  const controller = new AbortController();
  const abort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  outer?.addEventListener('abort', abort, { once: true });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            controller.abort(
              new DOMException(`no final status within ${timeoutMs} ms`, 'TimeoutError'),
            ),
          timeoutMs,
        );
  return {
    signal: controller.signal,
    cancel: () => {
      if (timer !== undefined) clearTimeout(timer);
      outer?.removeEventListener('abort', abort);
    },
  };
}
