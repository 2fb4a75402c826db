// Profiles signups on a running `wrangler dev` (see `make profile`): a V8 CPU profile of the
// Worker's isolate (the Worker and its Durable Objects) over N sequential signups, then self time
// per signup by where it ran: wasm (our Rust), the JS glue wasm-bindgen and workers-rs generate,
// wrangler's own middleware, the runtime's native code, garbage collection. Wall time per signup
// beside it: what is left is waiting (I/O, storage, timers).
//
//   node scripts/profile_signup.mjs WORKER_URL INSPECTOR_PORT [N]
import { readFileSync } from "node:fs";
import { connectInspector } from "./inspector.mjs";

const [worker, inspectorPort, n = "200"] = process.argv.slice(2);
if (!worker || !inspectorPort) {
  console.error("usage: profile_signup.mjs WORKER_URL INSPECTOR_PORT [N]");
  process.exit(2);
}
const count = Number(n);

const { send, close } = await connectInspector(inspectorPort);

const signup = async (i) => {
  const response = await fetch(`${worker}/signup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: `profile-${Date.now()}-${i}@profile.example` }),
  });
  await response.text();
  return response.status;
};

for (let i = 0; i < 20; i++) await signup(i); // warm
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 1000 });
await send("Profiler.start");
const statuses = {};
const started = performance.now();
for (let i = 0; i < count; i++) {
  const status = await signup(i);
  statuses[status] = (statuses[status] ?? 0) + 1;
}
const wallMs = performance.now() - started;
const { result } = await send("Profiler.stop");
close();

const profile = result.profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfUs = new Map();
const deltas = profile.timeDeltas;
profile.samples.forEach((id, i) => {
  const dt = deltas[i + 1] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
});
const where = (frame) => {
  const { url, functionName } = frame;
  if (functionName === "(idle)") return "idle";
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "(program)" || functionName === "(root)") return "runtime (native, outside JS)";
  if (url.startsWith("wasm://")) return "wasm (Rust)";
  if (url.includes("/build/") || url.endsWith("index.js") || url.includes("shim")) return "JS glue (wasm-bindgen, workers-rs)";
  if (url.includes("wrangler") || url.includes("middleware")) return "wrangler middleware";
  return url ? `other JS (${url.split("/").pop()})` : "builtins";
};
// The glue's import shims are anonymous functions; name them after the import they implement
// (`__wbg_log_…`), read from the bundle wrangler serves.
const sources = new Map();
const shimName = (frame) => {
  if (!frame.url.startsWith("file://")) return undefined;
  if (!sources.has(frame.url)) {
    try {
      sources.set(frame.url, readFileSync(new URL(frame.url), "utf8").split("\n"));
    } catch {
      sources.set(frame.url, []);
    }
  }
  const line = sources.get(frame.url)[frame.lineNumber] ?? "";
  return /(__wbg_[A-Za-z]+)_[0-9a-f]+: [^,]*$/.exec(line)?.[1];
};
const categories = {};
const functions = {};
for (const [id, us] of selfUs) {
  const frame = byId.get(id).callFrame;
  const category = where(frame);
  categories[category] = (categories[category] ?? 0) + us;
  const name = `${category}: ${frame.functionName || shimName(frame) || "(anonymous)"}`;
  functions[name] = (functions[name] ?? 0) + us;
}
const busy = Object.entries(categories)
  .filter(([c]) => c !== "idle")
  .reduce((sum, [, us]) => sum + us, 0);
console.log(`${count} signups, answers ${JSON.stringify(statuses)}, wall ${(wallMs / count).toFixed(2)} ms per signup`);
console.log(`CPU in the isolate: ${(busy / count).toFixed(0)} µs per signup`);
for (const [category, us] of Object.entries(categories).sort((a, b) => b[1] - a[1])) {
  if (category === "idle") continue;
  console.log(`  ${category.padEnd(40)} ${(us / count).toFixed(0).padStart(6)} µs  ${((100 * us) / busy).toFixed(1)}%`);
}
console.log("top functions (self time per signup):");
for (const [name, us] of Object.entries(functions).sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  if (name.startsWith("idle")) continue;
  console.log(`  ${(us / count).toFixed(1).padStart(7)} µs  ${name}`);
}
// Who calls the costliest builtins (a builtin's name alone is ambiguous: `exec` may be SQLite's
// or a RegExp's): self time by calling function, glue shims named.
const parents = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node);
const topBuiltins = Object.entries(functions)
  .filter(([name]) => name.startsWith("builtins: "))
  .sort((a, b) => b[1] - a[1])
  .slice(0, 6)
  .map(([name]) => name.slice("builtins: ".length));
console.log("callers of the costliest builtins (self time per signup):");
for (const builtin of topBuiltins) {
  const callers = {};
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (where(node.callFrame) !== "builtins" || (node.callFrame.functionName || "(anonymous)") !== builtin) continue;
    const parent = parents.get(id)?.callFrame;
    const name = parent ? `${where(parent)}: ${parent.functionName || shimName(parent) || `(anonymous ${parent.url.split("/").pop()}:${parent.lineNumber})`}` : "(none)";
    callers[name] = (callers[name] ?? 0) + us;
  }
  const listed = Object.entries(callers).sort((a, b) => b[1] - a[1]).slice(0, 3);
  console.log(`  ${builtin}: ${listed.map(([n, us]) => `${n} ${(us / count).toFixed(0)} µs`).join("; ")}`);
}

