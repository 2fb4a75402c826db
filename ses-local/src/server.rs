//! HTTP for ses-local: the Query API at `POST /` (faults first, then SigV4, then the action),
//! the verification links, the outbox for people (HTML) and programs (JSON). The server owns
//! what belongs to the HTTP side: the `Host` check (before everything, on every route), injected
//! faults (which answer before SES would) and the log of every request with its verdict.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use time::OffsetDateTime;

use serde::Serialize;

use crate::api::{Answer, Call, Ses};

use crate::faults::{Fault, FaultRequest, Faults};
use crate::hosts::Hosts;
use crate::mail::LinkOutcome;
use crate::pages;
use crate::query::Params;
use crate::sigv4::{self, Credentials, Incoming};

/// Template content may be up to 10 MB, form-encoded.
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Everything that reached ses-local's Query API, and what it answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub request_id: String,
    /// The region whose SES answered (the credential scope's, when ses-local serves it).
    pub region: String,
    /// Arrival time in Unix microseconds.
    pub received_at_us: u64,
    pub action: Option<String>,
    /// `EmailAddress` (a send) or `Identity` (a delete).
    pub email_address: Option<String>,
    /// `valid`, the SigV4 failure code, or `unchecked` when a fault answered first.
    pub signature: String,
    /// The injected fault that shaped the answer, if any.
    pub fault: Option<String>,
    pub status: u16,
    pub code: Option<String>,
    pub message_id: Option<String>,
}

pub struct App {
    /// One SES per region served, each with its own store, outbox and throttling; the first is
    /// the one a request whose credential scope names no served region is checked against.
    pub regions: Vec<(String, Mutex<Ses>)>,
    /// Faults queued by `POST /_faults`, applied before the signature check.
    pub faults: Mutex<Faults>,
    /// `GET /_requests`.
    pub requests: Mutex<Vec<RequestRecord>>,
    pub credentials: Credentials,
    pub max_skew: time::Duration,
    /// Added to this machine's clock, to simulate a caller whose clock is off.
    pub clock_offset: time::Duration,
    /// `http://127.0.0.1:PORT`, for verification links.
    pub base_url: String,
    /// The names requests must carry in `Host`; any other request is refused (DNS rebinding).
    pub hosts: Hosts,
    /// The Turnstile siteverify stand-in.
    pub siteverify: Mutex<crate::turnstile::Siteverify>,
    /// The DNS-over-HTTPS stand-in.
    pub resolver: Mutex<crate::dns::Resolver>,
}

/// A panic while holding a lock cannot leave a half-applied change (the store is replaced
/// whole, the log and faults are appended or popped); keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl App {
    /// The served region a request's credential scope names (`Credential=<key>/<date>/<region>/…`
    /// in `Authorization`), else the first: whose signature and state the request is for.
    fn region_of(&self, authorization: Option<&str>) -> (&str, &Mutex<Ses>) {
        let named = authorization
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|scope| scope.split('/').nth(2));
        let (name, ses) = self
            .regions
            .iter()
            .find(|(region, _)| Some(region.as_str()) == named)
            .unwrap_or(&self.regions[0]);
        (name, ses)
    }

    /// Every region's SES in turn, for what spans them (the outbox, the links).
    fn each_ses(&self) -> impl Iterator<Item = MutexGuard<'_, Ses>> {
        self.regions.iter().map(|(_, ses)| lock(ses))
    }

    /// Keeps the call in `/_requests` and prints one line for it on stderr: action, verdict,
    /// signature check, and the verification link of an accepted send (never the address).
    fn log(&self, record: RequestRecord, verification_link: Option<&str>) {
        let verdict = record.code.as_deref().unwrap_or("OK");
        let mut line = format!(
            "ses-local: {} {} {verdict} signature={}",
            record.action.as_deref().unwrap_or("-"),
            record.status,
            record.signature
        );
        if let Some(fault) = &record.fault {
            line.push_str(&format!(" fault={fault}"));
        }
        if let Some(link) = verification_link {
            line.push_str(&format!(" link={link}"));
        }
        // The log is for a person watching; a closed stderr must not stop the API.
        let _ = writeln!(std::io::stderr(), "{line}");
        lock(&self.requests).push(record);
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(query_api))
        .route("/_outbox", get(outbox))
        .route("/_outbox/{message_id}", get(outbox_mail))
        .route("/_outbox/{message_id}/scan", post(scan_link))
        .route("/_verify/{token}", get(verify_link))
        .route("/_requests", get(requests))
        .route(
            "/_health",
            get(|| async { Json(serde_json::json!({"ok": true})) }),
        )
        .route(
            "/_faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/turnstile/v0/siteverify", post(siteverify))
        .route("/dns-query", get(dns_query))
        .route("/_dns-queries", get(dns_queries))
        .route(
            "/_pages/verified",
            get(|| async { html(StatusCode::OK, pages::verified("Your address")) }),
        )
        .route(
            "/_pages/failed",
            get(|| async {
                html(
                    StatusCode::OK,
                    pages::not_verified("The link was invalid or had expired."),
                )
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), check_host))
        .with_state(app)
}

/// Why a request does not name this server in `Host` (`None`: it does). An absolute request URI
/// (`GET http://name/ HTTP/1.1`) names it too, and must be accepted as well.
fn host_refusal(hosts: &Hosts, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let mut values = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (values.next(), values.next()) else {
        return Some(if headers.contains_key(header::HOST) {
            "the request has more than one Host header".to_string()
        } else {
            "the request has no Host header (HTTP/1.1 requires one)".to_string()
        });
    };
    let named = std::iter::once(String::from_utf8_lossy(host.as_bytes()).into_owned())
        .chain(uri.authority().map(|a| a.as_str().to_string()));
    for name in named {
        if !hosts.accepts(&name) {
            let shown: String = name.chars().take(100).collect();
            return Some(format!(
                "Host {shown:?} is not a name of this server, so the request may come from a \
                 DNS-rebinding page. Accepted: {}. Add a name with --allowed-hosts \
                 (SES_LOCAL_ALLOWED_HOSTS)",
                hosts.list()
            ));
        }
    }
    None
}

/// Runs before every route: a request that does not name this server in `Host` gets a 421 that
/// says why, and nothing else happens for it (no fault is used up, no call is logged).
async fn check_host(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(reason) = host_refusal(&app.hosts, request.headers(), request.uri()) else {
        return next.run(request).await;
    };
    let (method, path) = (request.method(), request.uri().path());
    let _ = writeln!(
        std::io::stderr(),
        "ses-local: refused {method} {path} 421: {reason}"
    );
    let message = format!("ses-local refused this request: {reason}.");
    let mut response = if method == Method::POST && path == "/" {
        // An SDK shows an SES error envelope's code and message.
        let request_id = crate::ids::uuid();
        let answer = Answer::error(421, "MisdirectedRequest", &message, &request_id);
        xml_response(answer, request_id)
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    };
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn micros(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or_default()
}

fn xml_response(answer: Answer, request_id: String) -> Response {
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/xml".to_string()),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                request_id,
            ),
        ],
        answer.body,
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The answer a fault gives instead of the real one (`None`: answer normally).
fn fault_answer(
    fault: Fault,
    action: &str,
    email: &str,
    request_id: &str,
) -> Option<(Answer, &'static str)> {
    let xml = "text/xml";
    let answer = |status, body: String| Answer {
        status,
        body,
        code: None,
        message_id: None,
    };
    Some(match fault {
        Fault::Throttle => (Answer::error(400, "Throttling", "Maximum sending rate exceeded.", request_id), xml),
        Fault::Status(500) => (Answer::error(500, "InternalFailure", "An internal failure occurred.", request_id), xml),
        Fault::Status(_) => (Answer::error(503, "ServiceUnavailable", "Service is unavailable.", request_id), xml),
        Fault::Html => (
            answer(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".into()),
            "text/html",
        ),
        Fault::Empty => (answer(200, String::new()), xml),
        Fault::Truncated => {
            let full = crate::xml::success(action, "\n    <MessageId>0100-truncated</MessageId>\n  ", request_id);
            (answer(200, full[..full.len() / 2].to_string()), xml)
        }
        Fault::RejectAddress => (
            Answer::error(
                400,
                "InvalidParameterValue",
                &format!("Invalid email address<{email}>."),
                request_id,
            ),
            xml,
        ),
        Fault::DelayMs(_) | Fault::Hang | Fault::DeliverTruncated | Fault::DeliverHang => {
            return None
        }
    })
}

async fn query_api(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = app.now();
    let request_id = crate::ids::uuid();
    let params = Params(form_urlencoded::parse(&body).into_owned().collect());
    let action = params.get("Action").unwrap_or_default().to_string();
    let mut record = RequestRecord {
        request_id: request_id.clone(),
        region: String::new(),
        received_at_us: micros(arrived),
        action: params.get("Action").map(str::to_string),
        // The address a send mails, or the identity a delete names.
        email_address: params
            .get("EmailAddress")
            .or_else(|| params.get("Identity"))
            .map(str::to_string),
        signature: "unchecked".into(),
        fault: None,
        status: 0,
        code: None,
        message_id: None,
    };

    let fault = lock(&app.faults).next(&action);
    if let Some(fault) = fault {
        record.fault = Some(fault.name());
        let email = params.get("EmailAddress").unwrap_or_default();
        if let Some((answer, content_type)) = fault_answer(fault, &action, email, &request_id) {
            record.status = answer.status;
            record.code = answer.code.clone();
            app.log(record, None);
            let mut response = xml_response(answer, request_id);
            if let Ok(value) = header::HeaderValue::from_str(content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            return response;
        }
        match fault {
            Fault::Hang => {
                app.log(record.clone(), None);
                std::future::pending::<()>().await;
            }
            Fault::DelayMs(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            _ => {}
        }
    }

    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let incoming = Incoming {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &header_list,
        body: &body,
    };
    let now = app.now();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (region, region_ses) = app.region_of(authorization);
    let verdict = sigv4::verify(&incoming, &app.credentials, region, now, app.max_skew);
    record.region = region.to_string();
    // Handled and logged under the lock, so the log's order is the handling order; the lock
    // ends with this block, before any await below.
    let answer = {
        let mut ses = lock(region_ses);
        let answer = match &verdict {
            Ok(()) => ses.handle(
                &params,
                &mut Call {
                    now_us: micros(now),
                    request_id: &request_id,
                    base_url: &app.base_url,
                    new_id: &mut crate::ids::uuid,
                },
            ),
            Err(failure) => Answer::error(403, failure.code, &failure.message, &request_id),
        };
        record.signature = verdict.map_or_else(|f| f.code.to_string(), |()| "valid".to_string());
        record.status = answer.status;
        record.code = answer.code.clone();
        record.message_id = answer.message_id.clone();
        let link = answer
            .message_id
            .as_deref()
            .and_then(|id| ses.outbox().find(id))
            .map(|mail| mail.verification_link.clone());
        app.log(record, link.as_deref());
        answer
    };
    match fault {
        // Done, and the mail is in the outbox; only the answer is lost.
        Some(Fault::DeliverHang) => {
            std::future::pending::<()>().await;
            xml_response(answer, request_id)
        }
        Some(Fault::DeliverTruncated) => {
            let cut = answer.body.len() / 2;
            let body = answer.body.get(..cut).unwrap_or_default().to_string();
            xml_response(Answer { body, ..answer }, request_id)
        }
        _ => xml_response(answer, request_id),
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

/// Accepted sends, newest first: HTML for a person, JSON with `Accept: application/json`.
async fn outbox(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    // Copied under the lock, rendered after it: a page being read never holds up the API.
    let mut mails: Vec<_> = app
        .each_ses()
        .flat_map(|ses| ses.outbox().newest_first().cloned().collect::<Vec<_>>())
        .collect();
    mails.sort_by_key(|mail| std::cmp::Reverse(mail.sent_at_ms));
    if wants_json(&headers) {
        Json(serde_json::json!({ "messages": mails })).into_response()
    } else {
        html(StatusCode::OK, pages::outbox(mails.iter()))
    }
}

async fn outbox_mail(
    State(app): State<Arc<App>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mail = app
        .each_ses()
        .find_map(|ses| ses.outbox().find(&message_id).cloned());
    match mail {
        Some(mail) if wants_json(&headers) => Json(mail).into_response(),
        Some(mail) => html(StatusCode::OK, pages::mail(&mail)),
        None => html(
            StatusCode::NOT_FOUND,
            pages::not_verified("There is no such mail in the outbox."),
        ),
    }
}

/// The link scanner stand-in (Microsoft Safe Links and the like): GETs the mail's link and every
/// redirect after it, with no cookies and no person, and says where it landed. It verifies the
/// identity exactly as such a scanner does; a safe success page must record nothing.
async fn scan_link(State(app): State<Arc<App>>, Path(message_id): Path<String>) -> Response {
    let link = app.each_ses().find_map(|ses| {
        ses.outbox()
            .find(&message_id)
            .map(|mail| mail.verification_link.clone())
    });
    let Some(link) = link else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such mail in the outbox"})),
        )
            .into_response();
    };
    let scanned = tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new()
            .redirects(5)
            .timeout(std::time::Duration::from_secs(10))
            .build();
        match agent.get(&link).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let url = r.get_url().to_string();
                let body = r.into_string().unwrap_or_default();
                serde_json::json!({"landedOn": url, "status": status, "body": body})
            }
            Err(e) => serde_json::json!({"error": e.to_string()}),
        }
    })
    .await
    .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    Json(scanned).into_response()
}

/// A verification link: the identity is updated, then a 302 to the template's URL (or a page).
async fn verify_link(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let now_ms = micros(app.now()) / 1000;
    // The region that issued the link: the first whose outbox knows the token.
    let issuer = app
        .regions
        .iter()
        .find(|(_, ses)| lock(ses).outbox().knows_token(&token))
        .map_or(&app.regions[0].1, |(_, ses)| ses);
    let outcome = lock(issuer).open_link(&token, now_ms);
    let redirect =
        |url: &str| (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response();
    match outcome {
        Err(e) => html(StatusCode::INTERNAL_SERVER_ERROR, pages::not_verified(&e)),
        Ok(LinkOutcome::Verified {
            redirect: Some(url),
            ..
        })
        | Ok(LinkOutcome::Expired {
            redirect: Some(url),
            ..
        })
        | Ok(LinkOutcome::Invalid {
            redirect: Some(url),
        }) => redirect(&url),
        Ok(LinkOutcome::Verified {
            identity,
            redirect: None,
        }) => html(StatusCode::OK, pages::verified(&identity)),
        Ok(LinkOutcome::Expired { redirect: None, .. }) => html(
            StatusCode::GONE,
            pages::not_verified("This verification link has expired."),
        ),
        Ok(LinkOutcome::Invalid { redirect: None }) => html(
            StatusCode::NOT_FOUND,
            pages::not_verified("This verification link is not valid."),
        ),
    }
}

/// Calls of one action: how many arrived, and how many were answered 200.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
struct ActionCount {
    received: u64,
    accepted: u64,
}

/// Per-action call counts over the request log (calls without an `Action` are left out).
fn count_by_action(requests: &[RequestRecord]) -> BTreeMap<String, ActionCount> {
    let mut counts: BTreeMap<String, ActionCount> = BTreeMap::new();
    for record in requests {
        if let Some(action) = &record.action {
            let count = counts.entry(action.clone()).or_default();
            count.received += 1;
            count.accepted += u64::from(record.status == 200);
        }
    }
    counts
}

/// Every Query API request in arrival order, with its signature verdict, fault and answer, and
/// the calls counted per action.
async fn requests(State(app): State<Arc<App>>) -> Response {
    let requests = lock(&app.requests).clone();
    let counts = count_by_action(&requests);
    Json(serde_json::json!({ "requests": requests, "counts": counts })).into_response()
}

async fn list_faults(State(app): State<Arc<App>>) -> Response {
    Json(serde_json::json!({ "faults": lock(&app.faults).list() })).into_response()
}

async fn add_fault(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let bad = |message: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    };
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return bad(format!("expected {{\"action\",\"fault\",\"count\"}}: {e}")),
    };
    let mut faults = lock(&app.faults);
    match faults.add(&request) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "faults": faults.list() })),
        )
            .into_response(),
        Err(message) => bad(message),
    }
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    lock(&app.faults).clear();
    StatusCode::NO_CONTENT.into_response()
}

/// The DNS-over-HTTPS JSON API, for local use (`dns.rs`).
async fn dns_query(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let wants_json = crate::dns::wants_json(accept, params.get("ct").map(String::as_str));
    let reply = lock(&app.resolver).answer(
        params.get("name").map(String::as_str),
        params.get("type").map(String::as_str),
        wants_json,
    );
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/dns-json")],
        reply.body,
    )
        .into_response()
}

/// `GET /_dns-queries`: every question the DNS stand-in was asked, oldest first.
async fn dns_queries(State(app): State<Arc<App>>) -> Response {
    Json(lock(&app.resolver).asked().to_vec()).into_response()
}

/// Turnstile's siteverify, for local use: form-encoded or JSON fields, a JSON verdict.
async fn siteverify(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let fields: std::collections::HashMap<String, String> =
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect(),
            _ => form_urlencoded::parse(&body).into_owned().collect(),
        };
    let verdict = lock(&app.siteverify).verify(&fields);
    Json(verdict).into_response()
}
