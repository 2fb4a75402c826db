//! The gate's Workers side: the one Durable Object per region, `SesGate` (takes signups, keeps
//! the durable queue and the limits), its `wire` (puts the calls on the wire, each an interval
//! after the previous answer), its SQLite store, the Worker's client of the internal messages,
//! and one SES call over `fetch`. Every decision they make is in `signup_verify_gate`.

pub mod clients;
pub mod durable_sql;
pub mod ses_call;
pub mod ses_gate;
pub mod wire;
