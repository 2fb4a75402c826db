//! `SesGate`, the Durable Object every signup goes through: one instance per region of the pool
//! (`id_from_name(region)`: its name is its region, which it signs for and calls), so every
//! Worker isolate in the world shares one gate per region, and every SES call of the region
//! leaves from it, on its [`Wire`]. A thin shell: it parses the config once
//! per instance, opens the SQLite store, wakes the wire at every event, and moves RPC bodies in
//! and out of [`Gate`], where every decision lives (`signup_verify_gate::gate`).
//!
//! Invariant: an instance whose config or storage is unusable answers every signup with a clear
//! error (`misconfigured`, `unavailable`) and keeps its alarm retrying; it never panics.

use signup_verify_domain::log_line;
use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Method, Request, Response, Result, State,
};

use crate::gate::durable_sql::DurableSql;
use crate::gate::wire::Wire;
use crate::runtime::load_config;
use crate::runtime::request_json;
use crate::runtime::request_path;
use crate::runtime::WorkerRuntime;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::config::PoolPlace;
use signup_verify_gate::gate::Gate;
use signup_verify_gate::gate::PoolAsk;
use signup_verify_gate::gate::RETRY_LATER_MS;
use signup_verify_gate::messages::SendReply;
use signup_verify_gate::messages::SendRequest;
use signup_verify_gate::messages::SpillNote;
use signup_verify_gate::messages::StatusReply;
use signup_verify_gate::messages::CONFIRM_PATH;
use signup_verify_gate::messages::SEND_PATH;
use signup_verify_gate::messages::SPILLED_PATH;
use signup_verify_gate::messages::STATS_PATH;
use signup_verify_gate::messages::STATUS_PATH;
use signup_verify_gate::ports::GateRuntime;
use signup_verify_gate::sql_store::SqlGateStore;
use signup_verify_gate::store::GateStore;

type LiveGate = Gate<SqlGateStore<DurableSql>, Wire, WorkerRuntime>;

#[durable_object]
pub struct SesGate {
    state: State,
    env: Env,
    /// The gate, or what every signup is answered while it cannot run.
    gate: std::result::Result<LiveGate, ApiError>,
}

impl DurableObject for SesGate {
    fn new(state: State, env: Env) -> Self {
        let gate = match (
            load_config(&env),
            SqlGateStore::open(DurableSql(state.storage().sql())),
        ) {
            (Err(_), _) => Err(ApiError::Misconfigured),
            (_, Err(e)) => {
                crate::log::error(
                    log_line!({"event": "gate_storage_unusable", "error": e.to_string()}),
                );
                Err(ApiError::Unavailable)
            }
            (Ok(config), Ok(store)) => open_gate(&state, &env, config, store),
        };
        Self { state, env, gate }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Ok(gate) = &self.gate {
            gate.sender().pump();
            gate.count_request();
        }
        match (req.method(), request_path(&req).as_str(), &self.gate) {
            (Method::Post, SEND_PATH, gate) => {
                let request = request_json::<SendRequest>(&mut req).await;
                let reply: SendReply = match (gate, request) {
                    (Err(error), _) => Err(error.clone()),
                    (Ok(_), Err(_)) => Err(ApiError::InvalidBody),
                    (Ok(gate), Ok(request)) if request.handed_from.is_some() => {
                        let from = request.handed_from.as_deref().unwrap_or_default();
                        let pool = PoolAsk {
                            may_decline: request.may_decline,
                            contested_elsewhere: request.contested_elsewhere,
                        };
                        gate.adopt(&request.email, &request.request_id, from, pool)
                            .await
                    }
                    (Ok(gate), Ok(request)) if request.decoy => {
                        gate.decoy(&request.email, &request.request_id, request.may_decline)
                            .await
                    }
                    (Ok(gate), Ok(request)) => {
                        gate.send_in_pool(
                            &request.email,
                            &request.request_id,
                            request.presented.as_ref(),
                            PoolAsk {
                                may_decline: request.may_decline,
                                contested_elsewhere: request.contested_elsewhere,
                            },
                        )
                        .await
                    }
                };
                Response::from_json(&reply)
            }
            (Method::Post, path @ (STATUS_PATH | CONFIRM_PATH), gate) => {
                let signup = request_json::<SignupRef>(&mut req).await;
                let reply: StatusReply = match (gate, signup) {
                    (Err(error), _) => Err(error.clone()),
                    (Ok(_), Err(_)) => Err(ApiError::InvalidBody),
                    (Ok(gate), Ok(signup)) if path == STATUS_PATH => gate.status(&signup),
                    (Ok(gate), Ok(signup)) => gate.confirm(&signup).await,
                };
                Response::from_json(&reply)
            }
            (Method::Post, SPILLED_PATH, gate) => {
                match (gate, request_json::<SpillNote>(&mut req).await) {
                    (Ok(gate), Ok(note)) => {
                        gate.note_spill(&note.email, note.landed.as_ref());
                        Response::from_json(&())
                    }
                    (Err(error), _) => Response::error(error.code(), error.status()),
                    (Ok(_), Err(_)) => Response::error("invalid_body", 400),
                }
            }
            (Method::Get, STATS_PATH, Ok(gate)) => match gate.stats() {
                Ok(stats) => Response::from_json(&stats),
                Err(e) => Response::error(format!("stats: {e}"), 503),
            },
            (Method::Get, STATS_PATH, Err(error)) => Response::error(error.code(), error.status()),
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        match &self.gate {
            Ok(gate) => {
                gate.sender().pump();
                gate.count_request();
                gate.drain().await
            }
            // Nothing can be sent until the deployment is fixed; keep looking.
            Err(_) => {
                let runtime = WorkerRuntime(self.state.storage(), self.env.clone());
                let at = runtime.now_ms() + RETRY_LATER_MS;
                if let Err(error) = runtime.set_alarm(at).await {
                    crate::log::error(log_line!({"event": "alarm_not_set", "error": error}));
                }
            }
        }
        Response::ok("drained")
    }
}

/// The gate of this object's region: its name (kept in its storage for a start without it), its
/// share of the budget, its place in the pool; every failure answered, never a panic.
fn open_gate(
    state: &State,
    env: &Env,
    mut config: signup_verify_web::config::Config,
    store: SqlGateStore<DurableSql>,
) -> std::result::Result<LiveGate, ApiError> {
    let named = state.id().name();
    let region = store.own_region(named.as_deref()).map_err(|e| {
        crate::log::error(log_line!({"event": "gate_storage_unusable", "error": e.to_string()}));
        ApiError::Unavailable
    })?;
    // The Worker names each gate by its region; a gate never named is `AWS_REGION`'s, the one
    // gate there was before pools. In a pool, a gate that cannot tell its region calls none.
    match region {
        Some(region) => config.ses = config.ses.for_region(&region),
        None if config.ses.regions.regions().len() > 1 => {
            crate::log::error(log_line!({"event": "gate_region_unknown"}));
            return Err(ApiError::Misconfigured);
        }
        None => {}
    }
    // `DAILY_SEND_BUDGET` is the pool's: each region's gate keeps its share.
    config.gate.daily_send_budget = config
        .ses
        .regions
        .budget_share(config.gate.daily_send_budget, &config.ses.region);
    if config.ses.regions.regions().len() > 1 {
        config.gate.pool = Some(PoolPlace {
            region: config.ses.region.clone(),
            regions: config.ses.regions.clone(),
        });
    }
    let sender = Wire::new(config.ses, config.gate.interval_ms);
    let runtime = WorkerRuntime(state.storage(), env.clone());
    Gate::open(store, sender, runtime, config.gate).map_err(|e| {
        crate::log::error(log_line!({"event": "gate_storage_unusable", "error": e.to_string()}));
        ApiError::Unavailable
    })
}
