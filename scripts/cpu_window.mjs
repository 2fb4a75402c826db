// CPU time of a running `wrangler dev`'s isolate (the Worker and its Durable Objects) over a
// window another program chooses (`cargo bench --bench cost` runs one per life): starts a V8 CPU
// profile, prints `started`, and when a line (or the end) arrives on stdin stops it and prints
// one JSON line: the busy microseconds sampled and the wasm share of them. Busy is time in JS,
// wasm, builtins (native work a call makes, such as SQLite's `exec`, is its builtin's) and garbage
// collection: workerd does not tell V8 when it is idle, so a window that waits (a status check's
// gap) spends its waiting in `(program)`, which is left out with `(idle)` and `(root)`.
//
//   node scripts/cpu_window.mjs INSPECTOR_PORT
import { createInterface } from "node:readline";
import { connectInspector } from "./inspector.mjs";

const [inspectorPort] = process.argv.slice(2);
if (!inspectorPort) {
  console.error("usage: cpu_window.mjs INSPECTOR_PORT");
  process.exit(2);
}

const { send, close } = await connectInspector(inspectorPort);

await send("Profiler.enable");
const INTERVAL_US = 1000;
await send("Profiler.setSamplingInterval", { interval: INTERVAL_US });
await send("Profiler.start");
console.log("started");

await new Promise((resolve) => {
  const lines = createInterface({ input: process.stdin });
  lines.once("line", resolve);
  lines.once("close", resolve);
});
const { result } = await send("Profiler.stop");
close();

const { nodes, samples, timeDeltas } = result.profile;
const frameOf = new Map(nodes.map((node) => [node.id, node.callFrame]));
let busyUs = 0;
let wasmUs = 0;
// The sampler only runs while the isolate is entered: after a wait outside it, the next delta
// spans the whole wait. A sample counts for at most two intervals.
const sampled = (i) => Math.min(timeDeltas[i + 1] ?? 0, 2 * INTERVAL_US);
samples.forEach((id, i) => {
  const us = sampled(i);
  const frame = frameOf.get(id);
  if (["(idle)", "(program)", "(root)"].includes(frame.functionName)) return;
  busyUs += us;
  if (frame.url.startsWith("wasm://")) wasmUs += us;
});
console.log(JSON.stringify({ busy_us: busyUs, wasm_us: wasmUs }));
process.exit(0);
