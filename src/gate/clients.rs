//! The Worker's client of the internal messages (`signup_verify_gate::messages`), over the
//! `SesGate` stub ([`GateClient`]: a signup, a status, a confirmation, the stats
//! (`signup_verify_gate::messages::GateStats`, passed through as the gate wrote it)). A call
//! that fails on the way is logged and answered with the [`ApiError`] the caller gives.

use serde::de::DeserializeOwned;
use signup_verify_domain::log_line;
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

/// The Worker's side of the gate RPCs, for the region's one `SesGate`.
pub struct GateClient(Stub);

impl GateClient {
    pub fn for_region(env: &Env, region: &str) -> Result<Self, ApiError> {
        env.durable_object(GATE_BINDING)
            .and_then(|ns| ns.id_from_name(region)?.get_stub())
            .map(Self)
            .map_err(|e| rpc_failed("binding", &e.to_string(), ApiError::Misconfigured))
    }

    pub async fn send(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        presented: Option<SignupRef>,
        decoy: bool,
    ) -> SendReply {
        let body = serde_json::to_string(&SendRequest {
            email: email.clone(),
            request_id: request_id.clone(),
            presented,
            decoy,
        })
        .map_err(|_| ApiError::UpstreamError)?;
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

    /// The gate's [`GateStats`], as the JSON the gate wrote: passed through unparsed (parsing
    /// and writing it again in the Worker would only add code to the upload).
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
