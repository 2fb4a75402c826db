// A connection to a running `wrangler dev`'s V8 inspector (the isolate that runs the Worker and
// its Durable Objects), shared by `profile_signup.mjs` and `cpu_window.mjs`: `send(method,
// params)` resolves with the inspector's answer; `close()` ends the session.
import WebSocket from "ws";

export async function connectInspector(port) {
  // wrangler's inspector proxy refuses Node's built-in WebSocket handshake; `ws` (a wrangler
  // dependency) is accepted.
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await new Promise((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("error", reject);
  });
  let nextId = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}
