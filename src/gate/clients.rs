//! The Worker's client of the internal messages (`signup_verify_gate::messages`), over each
//! region's `SesGate` stub ([`GateClient`]: a signup, a status, a confirmation, the stats), and
//! the pool's routing around them: a new signup tries its mailbox's regions in turn
//! ([`send_signup`], `RegionPool::attempts`: its home unless the home declined as paused, which
//! this isolate then remembers), a status or a confirmation goes to the region its credential
//! names and follows a hand-over ([`lookup`]), and the stats of every region are added up
//! ([`pool_stats`]). A call that fails on the way is logged and answered with the [`ApiError`]
//! the caller gives.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use signup_verify_domain::log_line;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_gate::messages::Accepted;
use signup_verify_gate::messages::GateStats;
use signup_verify_gate::messages::SpillNote;
use signup_verify_gate::messages::SPILLED_PATH;
use signup_verify_gate::pool_stats::PoolStats;
use signup_verify_ses::config::SesConfig;
use signup_verify_ses::regions::PauseBook;
use worker::{Env, Stub};

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::{
    SendReply, SendRequest, StatusReply, GATE_BINDING, GATE_ORIGIN, SEND_PATH, STATS_PATH,
};

use crate::outbound::Outbound;
use crate::outbound::OutboundError;
use crate::outbound::Redirects;

thread_local! {
    /// The regions that declined a signup as paused, and until when (this isolate's memory).
    static PAUSED: RefCell<PauseBook> = RefCell::new(PauseBook::default());
}

/// A new signup of `email`: to its mailbox's home region, or, while the home is paused, to the
/// next region of its rendezvous order that takes it. The answer's signup names the region that
/// took it (`now_ms`: for the isolate's memory of paused regions). When the home declined, it is told where the signup went (its cooldown and a record
/// that contests a later signup there: `SpillNote`).
pub async fn send_signup(
    env: &Env,
    ses: &SesConfig,
    email: &EmailAddress,
    request_id: &RequestId,
    presented: Option<SignupRef>,
    decoy: bool,
    now_ms: u64,
) -> SendReply {
    let mailbox = Mailbox::of(email);
    let attempts = PAUSED.with(|paused| {
        ses.regions
            .attempts(mailbox.as_str(), &paused.borrow(), now_ms)
    });
    let mut contested_elsewhere = false;
    let mut declined_by_home = false;
    for (i, (region, may_decline)) in attempts.iter().enumerate() {
        let (region, may_decline) = (*region, *may_decline);
        // Every region gets the cookie's signup: only the gate holding it (or a record of where
        // it went) can match it, by its own key and nonce.
        let request = SendRequest {
            email: email.clone(),
            request_id: request_id.clone(),
            presented: presented.clone(),
            decoy,
            may_decline,
            contested_elsewhere,
            handed_from: None,
        };
        let reply = GateClient::for_region(env, &region.name)?
            .post_send(&request)
            .await;
        match reply {
            Err(ApiError::RegionPaused {
                paused_until_ms,
                open,
            }) if may_decline => {
                crate::log::info(
                    || log_line!({"event": "region_declined", "region": region.name, "paused_until_ms": paused_until_ms, "request_id": request_id}),
                );
                PAUSED.with(|paused| paused.borrow_mut().mark(&region.name, paused_until_ms));
                contested_elsewhere |= open;
                declined_by_home |= i == 0;
            }
            reply => {
                let reply = reply.map(|accepted| accepted.in_region(&region.name));
                if let (true, false, Ok(accepted), Some((home, _))) =
                    (declined_by_home, decoy, &reply, attempts.first())
                {
                    // A new signup there (sent, or queued with its credentials; not one merged
                    // into a signup already queued): the home keeps the mailbox's cooldown and
                    // where it went.
                    let new =
                        accepted.signup().is_some() || matches!(accepted, Accepted::Sent { .. });
                    if new {
                        let note = SpillNote {
                            email: email.clone(),
                            landed: accepted.signup().cloned(),
                        };
                        let noted = match GateClient::for_region(env, &home.name) {
                            Ok(gate) => gate.note(&note).await,
                            Err(error) => Err(error),
                        };
                        if let Err(error) = noted {
                            crate::log::error(
                                log_line!({"event": "spill_note_failed", "region": home.name, "code": error.code(), "request_id": request_id}),
                            );
                        }
                    }
                }
                return reply;
            }
        }
    }
    // Only the last region may not decline: it always answers above.
    Err(ApiError::Unavailable)
}

/// The status of the signup a credential names (`STATUS_PATH`), or a person's confirmation of
/// it (`CONFIRM_PATH`): at the gate of the region it names (`AWS_REGION`'s for a credential
/// made before regions were named), following each hand-over to the gate that holds it now.
pub async fn lookup(env: &Env, ses: &SesConfig, path: &str, signup: SignupRef) -> StatusReply {
    let mut signup = signup;
    // A signup is handed over at most once per region it passes through.
    for _ in 0..=ses.regions.regions().len() {
        let region = signup.region.clone().unwrap_or_else(|| ses.region.clone());
        match GateClient::for_region(env, &region)?
            .signup(path, &signup)
            .await
        {
            Err(ApiError::Moved { to }) if to.region.is_some() => signup = *to,
            Err(ApiError::Moved { .. }) => return Err(ApiError::UnknownSignup),
            reply => return reply,
        }
    }
    Err(ApiError::UnknownSignup)
}

/// Every region's stats and their totals (`PoolStats`), `AWS_REGION`'s gate's among them even
/// when it left the pool (it still answers older credentials); a region whose gate does not
/// answer fails the whole answer (figures without it would mislead).
pub async fn pool_stats(env: &Env, ses: &SesConfig) -> Result<PoolStats, ApiError> {
    let mut names: Vec<&str> = ses
        .regions
        .regions()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    if !names.contains(&ses.region.as_str()) {
        names.push(&ses.region);
    }
    let mut regions = BTreeMap::new();
    for name in names {
        let bytes = GateClient::for_region(env, name)?.stats().await?;
        let stats: GateStats = serde_json::from_slice(&bytes)
            .map_err(|e| rpc_failed("stats", &e.to_string(), ApiError::UpstreamError))?;
        regions.insert(name.to_string(), stats);
    }
    PoolStats::of(regions).ok_or(ApiError::Misconfigured)
}

/// The Worker's side of the gate RPCs, for one region's `SesGate`.
pub struct GateClient(Stub);

impl GateClient {
    pub fn for_region(env: &Env, region: &str) -> Result<Self, ApiError> {
        env.durable_object(GATE_BINDING)
            .and_then(|ns| ns.id_from_name(region)?.get_stub())
            .map(Self)
            .map_err(|e| rpc_failed("binding", &e.to_string(), ApiError::Misconfigured))
    }

    /// Tells this gate (a mailbox's home) where a signup it declined went.
    pub async fn note(&self, note: &SpillNote) -> Result<(), ApiError> {
        let body = serde_json::to_string(note).map_err(|_| ApiError::UpstreamError)?;
        reply(&self.0, post(SPILLED_PATH, &body))
            .await
            .map(|_| ())
            .map_err(|e| rpc_failed("spilled", &e, ApiError::UpstreamError))
    }

    /// One [`SendRequest`] to this gate.
    pub async fn post_send(&self, request: &SendRequest) -> SendReply {
        let body = serde_json::to_string(request).map_err(|_| ApiError::UpstreamError)?;
        rpc::<SendReply>(&self.0, post(SEND_PATH, &body))
            .await
            .map_err(|e| rpc_failed("send", &e, ApiError::UpstreamError))?
    }

    /// The status of the signup a token names (`STATUS_PATH`), or a person's confirmation of it
    /// (`CONFIRM_PATH`).
    pub async fn signup(&self, path: &str, signup: &SignupRef) -> StatusReply {
        let body = serde_json::to_string(signup).map_err(|_| ApiError::UpstreamError)?;
        rpc::<StatusReply>(&self.0, post(path, &body))
            .await
            .map_err(|e| rpc_failed("status", &e, ApiError::UpstreamError))?
    }

    /// The gate's [`GateStats`], as the JSON the gate wrote.
    pub async fn stats(&self) -> Result<Vec<u8>, ApiError> {
        reply(
            &self.0,
            Outbound::get(&format!("{GATE_ORIGIN}{STATS_PATH}")),
        )
        .await
        .map_err(|e| rpc_failed("stats", &e, ApiError::UpstreamError))
    }
}

/// A POST of `body` to `path` on a Durable Object's stub.
fn post(path: &str, body: &str) -> Result<Outbound, OutboundError> {
    Outbound::post(
        &format!("{GATE_ORIGIN}{path}"),
        &[],
        body,
        Redirects::Follow,
    )
}

/// One call to a Durable Object: `request` sent to `stub`, its JSON reply read; why not, if not.
async fn rpc<T: DeserializeOwned>(
    stub: &Stub,
    request: Result<Outbound, OutboundError>,
) -> Result<T, String> {
    serde_json::from_slice(&reply(stub, request).await?).map_err(|e| e.to_string())
}

/// The body of a Durable Object's `200` answer to `request` (any other status is an error: the
/// gate answers every message with `200` and a JSON reply).
async fn reply(stub: &Stub, request: Result<Outbound, OutboundError>) -> Result<Vec<u8>, String> {
    let response = request
        .map_err(|e| e.to_string())?
        .send_to(stub)
        .await
        .map_err(|e| e.to_string())?;
    match response.status {
        200 => Ok(response.body),
        status => Err(format!("HTTP {status}")),
    }
}

fn rpc_failed(step: &str, error: &str, answer: ApiError) -> ApiError {
    crate::log::error(log_line!({"event": "gate_rpc_failed", "step": step, "error": error}));
    answer
}
