// What one SQLite statement costs a Durable Object under `wrangler dev`, for `make bench`: the
// bench sends signup-verify's schema (src/gate/sql_store.rs) and, one at a time, the statements a
// signup runs; this object runs each `n` times in one request, over tables holding `rows` rows.
// The bench subtracts a request that runs none.
import { DurableObject } from "cloudflare:workers";

// Rows like the ones signups leave behind, in the tables a signup reads and writes.
const FILL = [
  "INSERT OR IGNORE INTO signups (key, record, next_check_ms, has_work, signed_up_ms) VALUES (?1, '{\"email\":\"someone@example.com\",\"state\":\"sent\"}', 1764651239600 + ?2, 1, 1764651234567 + ?2)",
  "INSERT OR IGNORE INTO identities (key, record, next_cleanup_ms, has_work, sent_ms) VALUES (?1, '{\"email\":\"someone@example.com\",\"owner\":\"ours\"}', NULL, 1, 1764651234567 + ?2)",
  "INSERT OR IGNORE INTO address_limits (key, record, last_ms) VALUES (?1, '{\"last_ms\":1764651234567,\"day_count\":1}', 1764651234567 + ?2)",
  "INSERT OR IGNORE INTO fair_queue (tag, seq, domain, email, key, enqueued_at_ms, attempts, request_id) VALUES (?2 / 8, ?2, 'd' || (?2 % 8) || '.example', 'a' || ?2 || '@example.com', 'q' || ?1, 1764651234567 + ?2, 0, 'r')",
];

export class Statements extends DurableObject {
  filled = 0;

  async fetch(request) {
    const { schema, rows, sql, args, n } = await request.json();
    const db = this.ctx.storage.sql;
    if (this.filled < rows) {
      for (const statement of schema) db.exec(statement);
      this.ctx.storage.transactionSync(() => {
        for (let i = 0; i < rows; i++) for (const fill of FILL) db.exec(fill, `k${i}`, i);
      });
      this.filled = rows;
    }
    // `$key` is a different stored row each time, `$n` a number that grows.
    for (let i = 0; i < n; i++) {
      const at = (Date.now() + i * 7919) % rows;
      const bound = args.map((a) => (a === "$key" ? `k${at}` : a === "$qkey" ? `qk${at}` : a === "$n" ? at : a));
      if (sql) db.exec(sql, ...bound).toArray();
    }
    return new Response("ok");
  }
}

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/healthz") return Response.json({ ok: true });
    return env.STATEMENTS.get(env.STATEMENTS.idFromName("bench")).fetch(request);
  },
};
