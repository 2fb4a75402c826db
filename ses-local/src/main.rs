//! The ses-local binary: reads its flags (or their `SES_LOCAL_*` variables) and serves the
//! library's [`App`], on 127.0.0.1 unless `--bind` says otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;

use ses_local::api::{Limits, Ses};
use ses_local::hosts::{self, AllowedHosts, Hosts};
use ses_local::sending::IdentityOn;
use ses_local::server::{self, App};
use ses_local::settings::Settings;
use ses_local::sigv4::Credentials;
use ses_local::store::{StateFile, Store};
use ses_local::turnstile;

/// A local Amazon SES (Query API) for custom verification emails: template CRUD, identities,
/// SendCustomVerificationEmail, SigV4 checks, a clickable outbox and fault injection.
///
/// Only requests whose Host names this server are answered (see --allowed-hosts), so a
/// DNS-rebinding web page cannot read the outbox's links.
///
/// Every flag can also be set by its environment variable (SES_LOCAL_PORT, ...).
///
/// Test endpoints: GET /_health, GET /_outbox (HTML, or JSON with Accept: application/json), GET /_requests,
/// POST/GET/DELETE /_faults. See ses-local/README.md.
#[derive(Debug, Parser)]
#[command(name = "ses-local", version)]
struct Args {
    /// Address to listen on. Keep the default unless ses-local must be reached from another
    /// machine or container: it accepts ses-local's well-known test credentials.
    #[arg(long, env = "SES_LOCAL_BIND", default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// More names requests may carry in `Host`, comma-separated: `name` (any port) or
    /// `name:port`. Besides these, only 127.0.0.1, localhost, [::1] and the bound address, with
    /// the bound port, are answered; any other Host (a DNS-rebinding page) gets 421. For a
    /// container reached by its service name: --bind 0.0.0.0 --allowed-hosts ses-local.
    #[arg(long, env = "SES_LOCAL_ALLOWED_HOSTS", value_name = "HOSTS")]
    allowed_hosts: Vec<AllowedHosts>,
    /// Port to listen on. 0 picks a free port; the chosen one is printed.
    #[arg(long, env = "SES_LOCAL_PORT", default_value_t = 4579)]
    port: u16,
    /// Access key id requests must be signed with.
    #[arg(long, env = "SES_LOCAL_ACCESS_KEY_ID", default_value = "AKIDSESLOCAL")]
    access_key_id: String,
    /// Secret access key requests must be signed with.
    #[arg(
        long,
        env = "SES_LOCAL_SECRET_ACCESS_KEY",
        default_value = "ses-local-secret-access-key"
    )]
    secret_access_key: String,
    /// Session token requests must carry (X-Amz-Security-Token). Unset: none may be sent.
    #[arg(long, env = "SES_LOCAL_SESSION_TOKEN")]
    session_token: Option<String>,
    /// Regions served, a comma list: each has its own identities, templates, outbox and
    /// throttling, and a request goes to the one its signature's credential scope names (the
    /// first, to be refused, when it names none of them).
    #[arg(long, env = "SES_LOCAL_REGION", default_value = "us-east-1")]
    region: String,
    /// TOML seed: verified_identities, configuration_sets and [[templates]] (see ses-local.toml).
    #[arg(long, env = "SES_LOCAL_CONFIG")]
    config: Option<PathBuf>,
    /// JSON file that keeps templates and identities across restarts (written atomically).
    #[arg(long, env = "SES_LOCAL_STATE")]
    state: Option<PathBuf>,
    /// Minimum milliseconds between accepted calls of each action; sooner is Throttling.
    #[arg(long, env = "SES_LOCAL_THROTTLE_MS", default_value_t = 1000)]
    throttle_ms: u64,
    /// How long a verification link stays valid, in seconds.
    #[arg(long, env = "SES_LOCAL_LINK_TTL_SECS", default_value_t = 86_400)]
    link_ttl_secs: u64,
    /// Largest allowed difference, in seconds, between a request's X-Amz-Date and this clock.
    #[arg(long, env = "SES_LOCAL_MAX_SKEW_SECS", default_value_t = 300)]
    max_skew_secs: i64,
    /// The region's identity quota: a send or verification that would add one more identity is
    /// refused with `LimitExceeded`, as SES refuses it (SES's quota: 10,000, not adjustable).
    #[arg(long, env = "SES_LOCAL_MAX_IDENTITIES", default_value_t = 10_000)]
    max_identities: usize,
    /// When a SendCustomVerificationEmail's identity appears: `send` (the API reference: the send
    /// adds it, Pending) or `click` (the FAQ: only the clicked link creates it).
    #[arg(
        long,
        env = "SES_LOCAL_IDENTITY_ON",
        value_enum,
        default_value = "send"
    )]
    identity_on: IdentityOn,
    /// What GetSendQuota reports as Max24HourSend. SES gives a sandbox account 200, which
    /// `ses-setup check` reports as "no production access".
    #[arg(long, env = "SES_LOCAL_MAX_24_HOUR_SEND", default_value_t = 50_000)]
    max_24_hour_send: u64,
    /// Seconds added to this machine's clock (negative allowed), to try out clock-skew errors.
    #[arg(
        long,
        env = "SES_LOCAL_CLOCK_OFFSET_SECS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_offset_secs: i64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let settings = match &args.config {
        Some(path) => Settings::load(path).unwrap_or_else(|e| fail(&e)),
        None => Settings::default(),
    };
    let region_names: Vec<String> = args
        .region
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if region_names.is_empty() {
        fail("--region names no region");
    }
    // The first region keeps --state's path; another region keeps `<stem>.<region>.<ext>` beside it.
    let state_of = |i: usize, region: &str| {
        args.state.clone().map(|path| {
            if i == 0 {
                return StateFile(path);
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            StateFile(path.with_file_name(format!("{stem}.{region}{ext}")))
        })
    };
    let listener = tokio::net::TcpListener::bind((args.bind, args.port))
        .await
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot listen on {}:{}: {e}",
                args.bind, args.port
            ))
        });
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()))
        .port();
    // Links in mails must be openable, and their host is one the Host check accepts.
    let base_url = format!("http://{}:{port}", hosts::link_host(args.bind));
    let allowed_hosts: Vec<_> = args
        .allowed_hosts
        .iter()
        .flat_map(|list| list.0.clone())
        .collect();
    let limits = Limits {
        throttle_ms: args.throttle_ms,
        link_ttl_ms: args.link_ttl_secs.saturating_mul(1000),
        max_identities: args.max_identities,
        identity_on: args.identity_on,
        max_24_hour_send: args.max_24_hour_send,
    };
    let regions = region_names
        .iter()
        .enumerate()
        .map(|(i, region)| {
            let state_file = state_of(i, region);
            let mut store = match &state_file {
                Some(file) => file.load().unwrap_or_else(|e| fail(&e)),
                None => Store::default(),
            };
            settings.seed(&mut store);
            if let Some(file) = &state_file {
                file.save(&store).unwrap_or_else(|e| fail(&e));
            }
            let ses = Ses::new(
                store,
                state_file,
                settings.configuration_sets.clone(),
                region,
                limits.clone(),
            );
            (region.clone(), Mutex::new(ses))
        })
        .collect();
    let app = Arc::new(App {
        regions,
        faults: Mutex::default(),
        requests: Mutex::default(),
        credentials: Credentials {
            access_key_id: args.access_key_id,
            secret_access_key: args.secret_access_key,
            session_token: args.session_token,
        },
        max_skew: time::Duration::seconds(args.max_skew_secs),
        clock_offset: time::Duration::seconds(args.clock_offset_secs),
        base_url: base_url.clone(),
        hosts: Hosts::new(args.bind, port, &allowed_hosts),
        siteverify: Mutex::new(turnstile::Siteverify::default()),
        resolver: Mutex::new(ses_local::dns::Resolver::new(&settings.dns)),
    });
    println!("ses-local listening on {base_url}/");
    let _ = std::io::stdout().flush();
    if let Err(e) = axum::serve(listener, server::router(app)).await {
        fail(&format!("server stopped: {e}"));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("ses-local: {message}");
    std::process::exit(2);
}
