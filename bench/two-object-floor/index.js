// The floor of signup-verify's path, in JavaScript, for `make bench`: the same hops with none of
// the work. The Worker posts the address to a gate object, the gate reserves a slot (in memory)
// and posts the call to a sender object, and the sender signs with aws4fetch and calls SES. Each
// hop is a Durable Object `fetch` with a JSON body, as signup-verify's are, or Workers RPC
// (`/signup-rpc`). No storage, no limits, no queue: whatever signup-verify takes beyond this is
// its own work, and whatever this takes beyond the baseline is the second object.
import { DurableObject } from "cloudflare:workers";
// The baseline's own request handling, so that the two differ only in their objects.
import { json, readEmail, sendVerification } from "../aws4fetch-gate/index.js";

export class FloorGate extends DurableObject {
  next = 0;

  reserve() {
    const now = Date.now();
    const slot = Math.max(now, this.next);
    this.next = slot + Number(this.env.GATE_INTERVAL_MS);
    return slot;
  }

  sender() {
    return this.env.FLOOR_SENDER.get(this.env.FLOOR_SENDER.idFromName("ses"));
  }

  async fetch(request) {
    const { email } = await request.json();
    const slot = this.reserve();
    const reply = await this.sender().fetch("http://sender/call", {
      method: "POST",
      body: JSON.stringify({ email, slot }),
    });
    return json(await reply.json(), reply.status);
  }

  async send(email) {
    return this.sender().call(email, this.reserve());
  }
}

export class FloorSender extends DurableObject {
  async fetch(request) {
    const { email, slot } = await request.json();
    const result = await this.call(email, slot);
    return json(result, result.status === "sent" ? 200 : 502);
  }

  async call(email, slot) {
    const wait = slot - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return sendVerification(this.env, email);
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return json({ ok: true }, 200);
    const rpc = pathname === "/signup-rpc";
    if (request.method !== "POST" || !(rpc || pathname === "/signup")) {
      return json({ error: "not_found" }, 404);
    }
    const { email, error } = await readEmail(request);
    if (error) return error;
    const gate = env.FLOOR_GATE.get(env.FLOOR_GATE.idFromName("ses"));
    if (rpc) {
      const result = await gate.send(email);
      return json(result, result.status === "sent" ? 200 : 502);
    }
    return gate.fetch("http://gate/send", { method: "POST", body: JSON.stringify({ email }) });
  },
};
