// The wire types, taken from openapi.yaml (through the generated ./openapi.ts) by path and
// status only, never by a component's name, so that they follow the document however its
// schemas are named or split.
import type { paths } from './openapi.js';

type SignupResponses = paths['/signup']['post']['responses'];
type StatusResponses = paths['/signup/status']['get']['responses'];
type ConfirmResponses = paths['/confirm']['post']['responses'];

/** `POST /signup`'s JSON body. */
export type SignupRequestBody = paths['/signup']['post']['requestBody']['content']['application/json'];

/** `200` from `POST /signup`: SES accepted the call (a honeypot hit gets the same answer). */
export type SentBody = SignupResponses[200]['content']['application/json'];

/** `202` from `POST /signup`: the signup is in the gate's durable queue. */
export type QueuedBody = SignupResponses[202]['content']['application/json'];

/** The JSON body of a response, if it has one. */
type JsonOf<Response> = Response extends { content: { 'application/json': infer Body } } ? Body : never;

/** The code of an error body (distributive: no body, no code). */
type CodeOf<Body> = Body extends { error: { code: infer Code } } ? Code : never;

/** The error codes any of `Responses` may carry. */
type CodesOf<Responses> = { [Status in keyof Responses]: CodeOf<JsonOf<Responses[Status]>> }[keyof Responses];

/**
 * The stable part of an error: its code, as any of the three endpoints the client calls may
 * answer it.
 */
export type ErrorCode = CodesOf<SignupResponses> | CodesOf<StatusResponses> | CodesOf<ConfirmResponses>;

/** Every error answer's body: `{"error": {"code", "message"}}`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** `200` from `GET /signup/status`: what became of one signup (never the address). */
export type SignupStatus = StatusResponses[200]['content']['application/json'];

/** `200` from `POST /confirm` (JSON): the signup's status once the confirmation is recorded. */
export type ConfirmedBody = ConfirmResponses[200]['content']['application/json'];

/** A signup's `status`: `queued`, `sent`, `verified`, `expired`, `rejected` or `dropped`. */
export type SignupState = SignupStatus['status'];

/** The states after which nothing more happens to a signup (except a confirmation). */
export type FinalState = Exclude<SignupState, 'queued' | 'sent'>;

/** Why a signup was dropped or expired. */
export type SignupReason = NonNullable<SignupStatus['reason']>;
