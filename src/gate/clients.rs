//! The clients of the internal messages (`signup_verify_gate::messages`), over Durable Object
//! stubs: Worker → `SesGate` ([`GateClient`]: a signup, a status, a confirmation, the stats) and
//! `SesGate` → `SesSender` ([`SenderClient`], the production [`SenderLink`]). A call that fails
//! on the way is logged and answered with the [`ApiError`] the caller gives.

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Stub};

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::request_id::RequestId;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::{
    CallRequest, CallResult, GateStats, SendReply, SendRequest, SenderLink, StatusReply, CALL_PATH,
    GATE_BINDING, GATE_ORIGIN, SENDER_BINDING, SEND_PATH, STATS_PATH,
};

use crate::runtime::body_json;

/// The Worker's side of the gate RPCs, for the region's one `SesGate`.
pub struct GateClient(Stub);

impl GateClient {
    pub fn for_region(env: &Env, region: &str) -> Result<Self, ApiError> {
        env.durable_object(GATE_BINDING)
            .and_then(|ns| ns.id_from_name(region)?.get_stub())
            .map(Self)
            .map_err(|e| rpc_failed("binding", &e, ApiError::Misconfigured))
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
        let result = async {
            let request = post(SEND_PATH, body)?;
            body_json::<SendReply>(self.0.fetch_with_request(request).await?).await
        }
        .await;
        result.map_err(|e| rpc_failed("send", &e, ApiError::UpstreamError))?
    }

    /// The status of the signup a token names (`STATUS_PATH`), or a person's confirmation of it
    /// (`CONFIRM_PATH`).
    pub async fn signup(&self, path: &str, signup: &SignupRef) -> StatusReply {
        let body = serde_json::to_string(signup).map_err(|_| ApiError::UpstreamError)?;
        let result = async {
            let request = post(path, body)?;
            body_json::<StatusReply>(self.0.fetch_with_request(request).await?).await
        }
        .await;
        result.map_err(|e| rpc_failed("status", &e, ApiError::UpstreamError))?
    }

    pub async fn stats(&self) -> Result<GateStats, ApiError> {
        let result = async {
            let url = format!("{GATE_ORIGIN}{STATS_PATH}");
            body_json::<GateStats>(self.0.fetch_with_str(&url).await?).await
        }
        .await;
        result.map_err(|e| rpc_failed("stats", &e, ApiError::UpstreamError))
    }
}

/// The gate's side of the call RPC, for the region's one `SesSender`.
pub struct SenderClient {
    env: Env,
    region: String,
}

impl SenderClient {
    pub fn for_region(env: Env, region: &str) -> Self {
        Self {
            env,
            region: region.to_string(),
        }
    }
}

impl SenderLink for SenderClient {
    async fn call(&self, call: &CallRequest) -> Option<CallResult> {
        let Ok(senders) = self.env.durable_object(SENDER_BINDING) else {
            crate::log::error(
                json!({"event": "config_error", "variable": SENDER_BINDING, "problem": "the SesSender Durable Object binding is missing from wrangler.toml"}),
            );
            return None;
        };
        let result = async {
            let stub = senders.id_from_name(&self.region)?.get_stub()?;
            let request = post(CALL_PATH, serde_json::to_string(call)?)?;
            body_json::<Option<CallResult>>(stub.fetch_with_request(request).await?).await
        }
        .await;
        result.unwrap_or_else(|e| {
            crate::log::error(json!({"event": "sender_unreachable", "attempt": call.attempt, "error": e.to_string(), "request_id": call.request_id}));
            Some(CallResult::TimedOut)
        })
    }
}

fn post(path: &str, body: String) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    Request::new_with_init(&format!("{GATE_ORIGIN}{path}"), &init)
}

fn rpc_failed(step: &str, e: &worker::Error, answer: ApiError) -> ApiError {
    crate::log::error(json!({"event": "gate_rpc_failed", "step": step, "error": e.to_string()}));
    answer
}
