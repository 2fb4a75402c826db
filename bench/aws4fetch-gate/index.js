// The baseline `make bench` measures signup-verify against: what a user would write by hand.
// aws4fetch signs SendCustomVerificationEmail; a Durable Object reserves one slot per interval
// (in memory, one object for the account); the Worker waits for its slot, then calls SES.
// Deliberately minimal: no queue, no per-address limits, no retries.
import { AwsClient } from "aws4fetch";
import { DurableObject } from "cloudflare:workers";

export class SlotGate extends DurableObject {
  next = 0;

  // Milliseconds the caller waits before its call may leave.
  reserve(intervalMs) {
    const now = Date.now();
    const slot = Math.max(now, this.next);
    this.next = slot + intervalMs;
    return slot - now;
  }
}

export const json = (body, status) => Response.json(body, { status });

// The address of a `{"email": …}` body, or the error response (the floor in bench/ shares it).
export async function readEmail(request) {
  let email;
  try {
    ({ email } = await request.json());
  } catch {
    return { error: json({ error: "invalid_json" }, 400) };
  }
  if (typeof email !== "string" || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    return { error: json({ error: "invalid_email" }, 400) };
  }
  return { email };
}

// Signs SendCustomVerificationEmail with aws4fetch and sends it: `{status: "sent", messageId}`, or
// `{status: "upstream_error"}` (the floor in bench/ shares it).
export async function sendVerification(env, email) {
  const aws = new AwsClient({
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    region: env.AWS_REGION,
    service: "ses",
  });
  const response = await aws.fetch(env.SES_ENDPOINT, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body: new URLSearchParams({
      Action: "SendCustomVerificationEmail",
      Version: "2010-12-01",
      EmailAddress: email,
      TemplateName: env.SES_TEMPLATE_NAME,
    }).toString(),
  });
  const reply = await response.text();
  if (!response.ok) return { status: "upstream_error" };
  return { status: "sent", messageId: /<MessageId>([^<]*)<\/MessageId>/.exec(reply)?.[1] };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return json({ ok: true }, 200);
    if (request.method !== "POST" || url.pathname !== "/signup") {
      return json({ error: "not_found" }, 404);
    }
    const { email, error } = await readEmail(request);
    if (error) return error;
    const gate = env.SLOT_GATE.get(env.SLOT_GATE.idFromName("ses"));
    const wait = await gate.reserve(Number(env.GATE_INTERVAL_MS));
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const result = await sendVerification(env, email);
    return json(result, result.status === "sent" ? 200 : 502);
  },
};
