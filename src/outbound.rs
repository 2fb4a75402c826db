//! Every request this Worker makes to another service, in one shape: a POST or a GET built from
//! plain values ([`Outbound::post`], [`Outbound::get`]), sent under a timeout whose timer aborts the fetch when it wins
//! ([`Outbound::send`], [`Outbound::status`], [`post`]), or sent to a Durable Object's stub
//! ([`Outbound::send_to`]); and what went wrong, told apart ([`OutboundError`]).
//!
//! Invariants: a timed-out fetch is always aborted (an `AbortController` signal rides on the
//! fetch; the timer's win calls `abort`), so no request outlives its caller's patience; the
//! timeout covers the connection, the headers and (when it is read) the body; a response's
//! body is read in one call into the runtime ([`body_bytes`]).

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Stub,
};

/// Why an outbound request has no answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The request could not be built: a URL or a header the runtime refuses.
    BadRequest(String),
    /// No answer within `timeout_ms`; the fetch was aborted. The other side may have received
    /// the request.
    TimedOut { timeout_ms: u64 },
    /// The fetch failed before any answer: refused, unreachable, a DNS or TLS failure, a reset.
    Unreachable(String),
    /// The answer's headers arrived (with `status`), but its body could not be read.
    BodyUnreadable { status: u16, error: String },
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(error) => write!(f, "bad request: {error}"),
            Self::TimedOut { timeout_ms } => write!(f, "no answer within {timeout_ms} ms"),
            Self::Unreachable(error) => f.write_str(error),
            Self::BodyUnreadable { status, error } => {
                write!(f, "HTTP {status} with an unreadable body: {error}")
            }
        }
    }
}

/// An answer: its status, its headers and its whole body.
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// One response header's value, if it is there.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }
}

/// Whether a 3xx answer is followed to its `Location` or is itself the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    Follow,
    /// The 3xx response itself is the answer (workerd gives it, not an opaque response): the
    /// body goes to the URL given and nowhere else.
    Manual,
}

/// A request built and ready to leave: building it is apart from sending it, so that a caller
/// that times its departure (the SES sender) has nothing but the fetch left to do then.
pub struct Outbound(Request);

impl Outbound {
    /// A POST of `body` to `url` with `headers`.
    pub fn post(
        url: &str,
        headers: &[(String, String)],
        body: &str,
        redirects: Redirects,
    ) -> Result<Self, OutboundError> {
        let built = || {
            let sent = Headers::new();
            for (name, value) in headers {
                sent.set(name, value)?;
            }
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(sent)
                .with_body(Some(JsValue::from_str(body)));
            if redirects == Redirects::Manual {
                init.with_redirect(RequestRedirect::Manual);
            }
            Request::new_with_init(url, &init)
        };
        built()
            .map(Self)
            .map_err(|e| OutboundError::BadRequest(e.to_string()))
    }

    /// A GET of `url`.
    pub fn get(url: &str) -> Result<Self, OutboundError> {
        Request::new(url, Method::Get)
            .map(Self)
            .map_err(|e| OutboundError::BadRequest(e.to_string()))
    }

    /// The request with the header `name: value` set.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, OutboundError> {
        self.0
            .headers_mut()
            .and_then(|headers| headers.set(name, value))
            .map_err(|e| OutboundError::BadRequest(e.to_string()))?;
        Ok(self)
    }

    /// Sends the request and reads the whole answer, all within `timeout_ms`. `on_headers` runs
    /// the moment the response headers arrive (before the body is read), and only then.
    pub async fn send(
        self,
        timeout_ms: u64,
        on_headers: &dyn Fn(),
    ) -> Result<OutboundResponse, OutboundError> {
        self.exchange(timeout_ms, on_headers, true).await
    }

    /// Sends the request and waits only for the status, within `timeout_ms`; the body is never
    /// read.
    pub async fn status(self, timeout_ms: u64) -> Result<u16, OutboundError> {
        let response = self.exchange(timeout_ms, &|| (), false).await?;
        Ok(response.status)
    }

    /// The fetch under a timer that aborts it; the body read too when `read_body`.
    async fn exchange(
        self,
        timeout_ms: u64,
        on_headers: &dyn Fn(),
        read_body: bool,
    ) -> Result<OutboundResponse, OutboundError> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let response = Fetch::Request(self.0)
                .send_with_signal(&signal)
                .await
                .map_err(unreachable)?;
            on_headers();
            if read_body {
                read(response).await
            } else {
                Ok(OutboundResponse {
                    status: response.status_code(),
                    headers: response.headers().clone(),
                    body: Vec::new(),
                })
            }
        };
        let timer = Delay::from(Duration::from_millis(timeout_ms));
        let answer = match select(pin!(exchange), timer).await {
            Either::Left((answer, _)) => answer,
            Either::Right(_) => {
                controller.abort();
                Err(OutboundError::TimedOut { timeout_ms })
            }
        };
        answer
    }

    /// Sends the request to a Durable Object and reads the whole answer. No timer: the object's
    /// answer may rightly wait (for a slot, for SES), and the runtime ends the call if the object
    /// dies.
    pub async fn send_to(self, stub: &Stub) -> Result<OutboundResponse, OutboundError> {
        let response = stub.fetch_with_request(self.0).await.map_err(unreachable)?;
        read(response).await
    }
}

/// POSTs `body` to `url` with `headers` (following redirects) and reads the whole answer, all
/// within `timeout_ms`.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout_ms: u64,
) -> Result<OutboundResponse, OutboundError> {
    Outbound::post(url, headers, body, Redirects::Follow)?
        .send(timeout_ms, &|| ())
        .await
}

fn unreachable(error: worker::Error) -> OutboundError {
    OutboundError::Unreachable(error.to_string())
}

/// A fetched response's whole body, in one call into the runtime (`Response.arrayBuffer()`):
/// workers-rs reads a fetched body chunk by chunk, crossing between wasm and JavaScript for each
/// chunk and its reader.
async fn body_bytes(response: worker::Response) -> worker::Result<Vec<u8>> {
    let response = worker::web_sys::Response::from(response);
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

async fn read(response: worker::Response) -> Result<OutboundResponse, OutboundError> {
    let status = response.status_code();
    let headers = response.headers().clone();
    match body_bytes(response).await {
        Ok(body) => Ok(OutboundResponse {
            status,
            headers,
            body,
        }),
        Err(e) => Err(OutboundError::BodyUnreadable {
            status,
            error: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::OutboundError;

    #[test]
    fn each_error_says_what_happened_and_a_timeout_says_how_long_was_waited() {
        assert_eq!(
            OutboundError::TimedOut { timeout_ms: 10_000 }.to_string(),
            "no answer within 10000 ms"
        );
        assert_eq!(
            OutboundError::Unreachable("connection refused".into()).to_string(),
            "connection refused"
        );
        assert_eq!(
            OutboundError::BadRequest("invalid URL".into()).to_string(),
            "bad request: invalid URL"
        );
        assert_eq!(
            OutboundError::BodyUnreadable {
                status: 200,
                error: "reset".into()
            }
            .to_string(),
            "HTTP 200 with an unreadable body: reset"
        );
    }
}
