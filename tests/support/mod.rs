//! The e2e harness: starts ses-local and a real `wrangler dev` (workerd, Durable Objects) on free
//! loopback ports, drives them over HTTP, and stops both process groups when dropped.
//!
//! It runs the Worker bundle `make test` built into `build/` (through a copy of wrangler.toml
//! without its `[build]` step, so stacks start without rebuilding), with its own `--persist-to`
//! directory and `--var` overrides.

// Native test code: reading the clock is fine off wasm32.
#![allow(clippy::disallowed_methods, dead_code)]

pub mod contract;
pub mod gate;
mod listening;
pub mod webhook;

use listening::ses_local_url;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ACCESS_KEY_ID: &str = "AKIDE2ETEST";
pub const SECRET_ACCESS_KEY: &str = "e2e-secret-access-key";

/// The repository's root (where `build/`, `node_modules/` and `tests/browser/` are).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a stack is started with.
#[derive(Default)]
pub struct Spec<'a> {
    /// `--var NAME:VALUE` overrides for the Worker.
    pub vars: &'a [(&'a str, &'a str)],
    /// Extra ses-local flags.
    pub ses_args: &'a [&'a str],
    /// Point the Worker somewhere other than ses-local.
    pub ses_endpoint: Option<String>,
    /// Runs after ses-local is provisioned, before the Worker starts.
    pub prepare: Option<fn(&SesClient)>,
    /// A session token ses-local requires and the Worker sends (`AWS_SESSION_TOKEN`).
    pub session_token: Option<&'a str>,
    /// How far ses-local's clock is ahead of the Worker's.
    pub clock_offset_secs: i64,
    /// Require Turnstile, verified by ses-local's siteverify stand-in.
    pub turnstile: bool,
    /// Durable Object state to start from (a `wrangler dev` state directory's `v3/`, copied in
    /// before the Worker starts): what an earlier build stored, as a deploy finds it.
    pub state_from: Option<&'a Path>,
    /// A pool of SES regions (`SES_REGIONS`; ses-local serves them all, each provisioned with
    /// the From identity and the template); empty: ses-local's one region, as before.
    pub regions: &'a [&'a str],
    /// Another Worker bundle than the repository's `build/` (a directory holding `index.js`):
    /// `make bench` compares a build of an earlier commit with it (`BENCH_COMPARE_BUILD`).
    pub build: Option<&'a Path>,
}

/// The Chromium the browser tests drive: `CHROMIUM_PATH`, else the first `chromium` or
/// `chromium-browser` on `PATH` (`make test` installs Debian's); a missing one fails loudly.
pub fn chromium() -> String {
    if let Ok(path) = std::env::var("CHROMIUM_PATH") {
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.exists())
        .map(|found| found.to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            panic!("no Chromium: set CHROMIUM_PATH or put chromium on PATH (`make test` installs Debian's)")
        })
}

/// The `STATUS_TOKEN_SECRET` and `WEBHOOK_SECRET` the follow-up tests give their stacks.
pub const STATUS_SECRET: &str = "e2e-status-token-secret-0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The verified sender and the template every stack gets through the Query API.
pub const FROM: &str = "noreply@signup-verify.test";
pub const TEMPLATE: &str = "SignupVerify";

/// Signed Query API calls to ses-local, as an SDK would make them.
#[derive(Clone)]
pub struct SesClient {
    pub url: String,
    /// The region its calls are signed for (ses-local answers as that region).
    pub region: String,
    session_token: Option<String>,
    clock_offset_secs: i64,
}

impl SesClient {
    /// A signed call; returns (status, XML body). Like an SDK, it waits and retries when SES
    /// answers `Throttling` (each action may be called once a second).
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> (u16, String) {
        for _ in 0..3 {
            let (status, body) = self.call_once(action, params);
            if !(status == 400 && body.contains("<Code>Throttling</Code>")) {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(1100));
        }
        panic!("{action} stayed throttled");
    }

    fn call_once(&self, action: &str, params: &[(&str, &str)]) -> (u16, String) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", "2010-12-01");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        let signing_ms = now_ms.saturating_add_signed(self.clock_offset_secs * 1000);
        let credentials = signup_verify_ses::config::AwsCredentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_ACCESS_KEY.into(),
            session_token: self.session_token.as_deref().map(Into::into),
        };
        let signed = signup_verify_ses::request::sign_headers(
            "POST",
            &self.url,
            &[("content-type", content_type)],
            body.as_bytes(),
            &credentials,
            &self.region,
            "ses",
            std::time::UNIX_EPOCH + Duration::from_millis(signing_ms),
        )
        .expect("sign");
        let mut request = agent().post(&self.url).set("content-type", content_type);
        for (name, value) in &signed {
            request = request.set(name, value);
        }
        match request.send_string(&body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                (r.status(), r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("{action}: {e}"),
        }
    }

    /// The same client, signing for `region`.
    pub fn in_region(&self, region: &str) -> SesClient {
        SesClient {
            region: region.to_string(),
            ..self.clone()
        }
    }

    /// An identity's `VerificationStatus`, if ses-local knows it.
    pub fn verification_status(&self, identity: &str) -> Option<String> {
        let (_, body) = self.call(
            "GetIdentityVerificationAttributes",
            &[("Identities.member.1", identity)],
        );
        body.split("<VerificationStatus>")
            .nth(1)
            .and_then(|rest| rest.split("</VerificationStatus>").next())
            .map(str::to_string)
    }

    /// All mails, newest first.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        get_json(&format!("{}_outbox", self.url))["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Makes the template's links land on `url` (for example the Worker's `/confirm`).
    pub fn point_success_url_at(&self, url: &str) {
        let (status, body) = self.call(
            "UpdateCustomVerificationEmailTemplate",
            &[("TemplateName", TEMPLATE), ("SuccessRedirectionURL", url)],
        );
        assert_eq!(status, 200, "UpdateCustomVerificationEmailTemplate: {body}");
    }

    /// Verifies the From address by its mailed link, and creates the template whose links land
    /// on ses-local's own pages.
    fn provision(&self) {
        let (status, body) = self.call("VerifyEmailIdentity", &[("EmailAddress", FROM)]);
        assert_eq!(status, 200, "VerifyEmailIdentity: {body}");
        // With several regions the outbox holds one such mail per region so far, the earlier
        // ones' links already used: this region's is the one that still opens.
        let links: Vec<String> = self
            .mails()
            .into_iter()
            .filter(|m| m["emailAddress"] == FROM)
            .filter_map(|m| m["verificationLink"].as_str().map(str::to_string))
            .collect();
        assert!(!links.is_empty(), "verification mail");
        assert!(
            links
                .iter()
                .any(|link| get(link).map(|r| r.status) == Some(200)),
            "open the verification link"
        );
        assert_eq!(self.verification_status(FROM).as_deref(), Some("Success"));
        let success = format!("{}_pages/verified", self.url);
        let failure = format!("{}_pages/failed", self.url);
        let (status, body) = self.call(
            "CreateCustomVerificationEmailTemplate",
            &[
                ("TemplateName", TEMPLATE),
                ("FromEmailAddress", FROM),
                ("TemplateSubject", "Confirm your email address"),
                (
                    "TemplateContent",
                    "<html><body><p>Confirm your address:</p></body></html>",
                ),
                ("SuccessRedirectionURL", &success),
                ("FailureRedirectionURL", &failure),
            ],
        );
        assert_eq!(status, 200, "CreateCustomVerificationEmailTemplate: {body}");
    }
}

/// A child process in its own process group, so wrangler's workerd children die with it.
///
/// Everything `wrangler dev` starts (its node process, esbuild, the workerd runtimes) stays in
/// the group it inherits: nothing it spawns is detached (tests/harness.rs checks it with `ps`).
/// So one `kill(-pgid)` reaches them all, and `kill(-pgid, 0)` failing with `ESRCH` says they
/// are gone, without procfs (portable to macOS and the BSDs).
pub struct Group(Child);

impl Group {
    /// The process group (the child's pid, as [`spawn_group`] makes it the group's leader).
    pub fn pgid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.pgid();
        // SAFETY: kill(2) on the process group this test created; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
        // Wait until every process of the group is gone and reaped (a restarted stack must not
        // overlap): orphaned workerds are reaped by init, which may take a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_exists(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether any process (a zombie included) is still in process group `pgid`.
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; no memory is involved.
    let found = unsafe { libc::kill(-pgid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn spawn_group(command: &mut Command) -> Group {
    Group(
        command
            .process_group(0)
            .spawn()
            .expect("spawn child process"),
    )
}

pub struct Stack {
    pub worker: String,
    /// `wrangler dev`'s V8 inspector (the isolate that runs the Worker and its objects).
    pub inspector_port: u16,
    pub ses: String,
    pub client: SesClient,
    pub dir: PathBuf,
    vars: Vec<String>,
    restarts: u32,
    _wrangler: Option<Group>,
    _ses_local: Group,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Stop wrangler before its state goes; the stack's logs stay in `dir`.
        self._wrangler.take();
        if state_dir(&self.dir).starts_with("/dev/shm") {
            let _ = std::fs::remove_dir_all(state_dir(&self.dir));
        }
    }
}

/// Copies the directory tree `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create state directory");
    for entry in std::fs::read_dir(from).expect("read state fixture") {
        let entry = entry.expect("state fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy state fixture");
        }
    }
}

/// Where a stack's Durable Object state lives: in RAM (`/dev/shm`) when the machine has it, so
/// that a slow disk's fsync does not stall the object during timing tests; else `dir/state`.
fn state_dir(dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    match dir.file_name() {
        Some(name) if shm.is_dir() => shm.join("signup-verify-e2e").join(name),
        _ => dir.join("state"),
    }
}

/// Starts `wrangler dev` for a stack (state in [`state_dir`]) and waits until it answers; returns
/// it, the address it reports and its V8 inspector's port. A port taken between choosing it and binding it (other stacks
/// start at the same time) is retried with fresh ports.
fn spawn_wrangler(dir: &Path, vars: &[String], run: u32) -> (Group, String, u16) {
    for attempt in 0..4 {
        match try_spawn_wrangler(dir, vars, run, attempt) {
            Ok(started) => return started,
            Err(log) if log.contains("Address already in use") && attempt < 3 => continue,
            Err(log) => panic!("wrangler dev did not become ready; its log:\n{log}"),
        }
    }
    unreachable!("the last attempt panics")
}

fn try_spawn_wrangler(
    dir: &Path,
    vars: &[String],
    run: u32,
    attempt: u32,
) -> Result<(Group, String, u16), String> {
    let config_path = dir.join("wrangler.toml");
    let (port, inspector) = (free_port(), free_port());
    let log_path = dir.join(match (run, attempt) {
        (0, 0) => "wrangler.log".to_string(),
        (run, attempt) => format!("wrangler-{run}-{attempt}.log"),
    });
    let log = std::fs::File::create(&log_path).expect("log file");
    let node_bin = root().join("node_modules/.bin");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(root().join("node_modules/.bin/wrangler"));
    command
        .arg("dev")
        .arg("--config")
        .arg(&config_path)
        .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &inspector.to_string()])
        .arg("--persist-to")
        .arg(state_dir(dir))
        .args(vars.iter().flat_map(|v| ["--var".to_string(), v.clone()]))
        .env("PATH", path)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let mut child = spawn_group(&mut command);

    // Talk to the address wrangler itself reports (should it not get the port asked for, a
    // health check on that port could reach another test's stack).
    let deadline = Instant::now() + Duration::from_secs(120);
    let worker = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let ready = log
            .split("Ready on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|url| url.trim_end_matches('/').to_string());
        if let Some(url) = ready {
            if get(&format!("{url}/healthz")).map(|r| r.status) == Some(200) {
                break url;
            }
        }
        let exited = child.0.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            return Err(format!("(port {port}, exit {exited:?})\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    Ok((child, worker, inspector))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{} is missing ({what}). Run `make test`, which builds it first.",
        path.display()
    );
}

/// wrangler.toml as committed, minus `[build]` (the bundle is already built) and with `main` absolute.
/// Another build's config is the `wrangler.toml` beside its `build/` when there is one (an
/// earlier commit's worktree: its bindings and migrations go with its code).
fn test_wrangler_config(build: &Path) -> String {
    let beside = build.parent().map(|dir| dir.join("wrangler.toml"));
    let config = beside
        .filter(|path| build != root().join("build") && path.exists())
        .unwrap_or_else(|| root().join("wrangler.toml"));
    let original = std::fs::read_to_string(&config).expect("read wrangler.toml");
    let mut out = String::new();
    let mut in_build = false;
    for line in original.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        if trimmed.starts_with("main =") {
            out.push_str(&format!(
                "main = {:?}\n",
                build.join("index.js").display().to_string()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A `wrangler dev` of another Worker (the benchmark's JavaScript baseline), from its
/// wrangler.toml text, with `--var NAME:VALUE` overrides; stopped when dropped.
pub struct DevWorker {
    pub url: String,
    pub dir: PathBuf,
    wrangler: Option<Group>,
}

impl DevWorker {
    pub fn start(name: &str, config: &str, vars: &[String]) -> DevWorker {
        let dir = stack_dir(name);
        std::fs::write(dir.join("wrangler.toml"), config).expect("write wrangler.toml");
        let (wrangler, url, _) = spawn_wrangler(&dir, vars, 0);
        DevWorker {
            url,
            dir,
            wrangler: Some(wrangler),
        }
    }
}

impl Drop for DevWorker {
    fn drop(&mut self) {
        self.wrangler.take();
        if state_dir(&self.dir).starts_with("/dev/shm") {
            let _ = std::fs::remove_dir_all(state_dir(&self.dir));
        }
    }
}

/// A fresh directory for one stack's config and logs, under target/e2e.
fn stack_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = root()
        .join("target/e2e")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create stack dir");
    dir
}

impl Stack {
    pub fn start(name: &str, spec: Spec) -> Stack {
        let dir = stack_dir(name);

        let ses_bin = root().join("target/release/ses-local");
        require(&ses_bin, "the ses-local binary");
        let build = spec
            .build
            .map_or_else(|| root().join("build"), Path::to_path_buf);
        require(&build.join("index.js"), "the Worker bundle");
        require(
            &root().join("node_modules/.bin/wrangler"),
            "wrangler from npm",
        );

        let ses_log = std::fs::File::create(dir.join("ses-local.stderr")).expect("log file");
        let mut ses_command = Command::new(&ses_bin);
        ses_command
            .args([
                "--port",
                "0",
                "--access-key-id",
                ACCESS_KEY_ID,
                "--secret-access-key",
                SECRET_ACCESS_KEY,
            ])
            .arg("--config")
            .arg(root().join("tests/ses-local-e2e.toml"))
            .args(spec.ses_args)
            .args(
                (!spec.regions.is_empty())
                    .then(|| ["--region".to_string(), spec.regions.join(",")])
                    .into_iter()
                    .flatten(),
            )
            .args(["--clock-offset-secs", &spec.clock_offset_secs.to_string()])
            .args(
                spec.session_token
                    .iter()
                    .flat_map(|t| ["--session-token", t]),
            )
            .stdout(Stdio::piped())
            .stderr(ses_log);
        let mut ses_child = spawn_group(&mut ses_command);
        let ses = ses_local_url(ses_child.0.stdout.take().expect("ses-local stdout"));
        let client = SesClient {
            url: ses.clone(),
            region: spec.regions.first().unwrap_or(&"us-east-1").to_string(),
            session_token: spec.session_token.map(str::to_string),
            clock_offset_secs: spec.clock_offset_secs,
        };
        match spec.regions {
            [] => client.provision(),
            regions => regions.iter().for_each(|r| client.in_region(r).provision()),
        }
        if let Some(prepare) = spec.prepare {
            prepare(&client);
        }

        let config_path = dir.join("wrangler.toml");
        let config = test_wrangler_config(&build);
        if let Some(from) = spec.state_from {
            copy_dir(from, &state_dir(&dir).join("v3"));
        }
        std::fs::write(&config_path, config).expect("write test wrangler.toml");
        let endpoint = spec.ses_endpoint.clone().unwrap_or_else(|| ses.clone());
        let mut vars: Vec<String> = vec![
            format!("AWS_ACCESS_KEY_ID:{ACCESS_KEY_ID}"),
            format!("AWS_SECRET_ACCESS_KEY:{SECRET_ACCESS_KEY}"),
            format!("SES_ENDPOINT:{endpoint}"),
            // Most tests post more than 5 signups; the rate limit test switches it back on.
            "IP_RATE_LIMIT:off".to_string(),
        ];
        if !spec.regions.is_empty() {
            vars.push(format!("AWS_REGION:{}", spec.regions[0]));
            vars.push(format!("SES_REGIONS:{}", spec.regions.join(",")));
            let endpoints = vec![endpoint.as_str(); spec.regions.len()].join(",");
            vars.push(format!("SES_ENDPOINTS:{endpoints}"));
        }
        // The address checks ask ses-local's DNS-over-HTTPS stand-in, never the Internet.
        if !spec.vars.iter().any(|(name, _)| *name == "DOH_URL") {
            vars.push(format!("DOH_URL:{ses}dns-query"));
        }
        vars.extend(spec.session_token.map(|t| format!("AWS_SESSION_TOKEN:{t}")));
        if spec.turnstile {
            vars.push("TURNSTILE_SECRET_KEY:1x0000000000000000000000000000000AA".to_string());
            vars.push(format!("TURNSTILE_VERIFY_URL:{ses}turnstile/v0/siteverify"));
        }
        vars.extend(spec.vars.iter().map(|(k, v)| format!("{k}:{v}")));
        let (wrangler, worker, inspector_port) = spawn_wrangler(&dir, &vars, 0);
        Stack {
            worker,
            inspector_port,
            ses,
            client,
            dir,
            vars,
            restarts: 0,
            _wrangler: Some(wrangler),
            _ses_local: ses_child,
        }
    }

    /// The process groups of the stack's `wrangler dev` and ses-local, in that order.
    pub fn process_groups(&self) -> (Option<i32>, i32) {
        (
            self._wrangler.as_ref().map(Group::pgid),
            self._ses_local.pgid(),
        )
    }

    /// Kills `wrangler dev` (and its workerd) and starts it again on the same persisted state,
    /// as an eviction or a deploy would.
    pub fn restart_worker(&mut self) {
        self._wrangler = None;
        self.restarts += 1;
        let (wrangler, worker, inspector_port) =
            spawn_wrangler(&self.dir, &self.vars, self.restarts);
        self._wrangler = Some(wrangler);
        self.worker = worker;
        self.inspector_port = inspector_port;
    }

    pub fn post_json(&self, body: &str) -> Reply {
        request(
            "POST",
            &format!("{}/signup", self.worker),
            Some(("application/json", body.as_bytes())),
        )
    }

    pub fn signup(&self, email: &str) -> Reply {
        self.post_json(&serde_json::json!({ "email": email }).to_string())
    }

    /// The custom verification mails ses-local accepted (not the harness's own), newest first.
    pub fn outbox(&self) -> Vec<serde_json::Value> {
        let mut mails = self.client.mails();
        mails.retain(|m| m["kind"] == "CustomVerification");
        mails
    }

    /// The SendCustomVerificationEmail requests ses-local received, in order.
    pub fn ses_requests(&self) -> Vec<serde_json::Value> {
        let all = get_json(&format!("{}_requests", self.ses));
        let mut requests = all["requests"].as_array().cloned().unwrap_or_default();
        requests.retain(|r| r["action"] == "SendCustomVerificationEmail");
        requests
    }

    /// Waits (up to `timeout`) until ses-local accepted `n` custom verification mails.
    pub fn wait_for_outbox(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        // Quick for one mail, and few reads of a long outbox during a timing test.
        let mut pause = Duration::from_millis(50);
        loop {
            let outbox = self.outbox();
            if outbox.len() >= n || Instant::now() > deadline {
                return outbox;
            }
            std::thread::sleep(pause);
            pause = (pause * 3 / 2).min(Duration::from_secs(1));
        }
    }

    /// `GET /gate/stats` with the given bearer token.
    pub fn stats(&self, token: Option<&str>) -> Reply {
        let mut req = agent().get(&format!("{}/gate/stats", self.worker));
        if let Some(token) = token {
            req = req.set("authorization", &format!("Bearer {token}"));
        }
        match req.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => into_reply("GET", r),
            Err(e) => panic!("stats: {e}"),
        }
    }

    /// Everything wrangler logged so far, every run's file (after a moment for lines in flight).
    pub fn log_text(&self) -> String {
        std::thread::sleep(Duration::from_secs(2));
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Whether wrangler's log shows `needle` within a few seconds (log lines arrive asynchronously).
    pub fn log_contains(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Every run's log (a restart or a retried start writes its own file).
            let log: String = std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect();
            if log.contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// When ses-local saw each accepted send arrive, in microseconds since the Unix epoch (its
    /// clock is this machine's, so a test can compare these with `unix_now_us`).
    pub fn send_arrivals_us(&self) -> Vec<u64> {
        self.ses_requests()
            .iter()
            .filter(|r| r["status"] == 200)
            .filter_map(|r| r["receivedAtUs"].as_u64())
            .collect()
    }

    /// Microseconds between consecutive accepted sends, as ses-local saw them arrive.
    pub fn send_gaps_us(&self) -> Vec<u64> {
        self.send_arrivals_us()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect()
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// The reply, after checking it against `openapi.yaml` when it is the Worker's.
fn into_reply(method: &str, response: ureq::Response) -> Reply {
    let status = response.status();
    let url = response.get_url().to_string();
    let headers: Vec<(String, String)> = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_string();
            (n, v)
        })
        .collect();
    let text = response.into_string().unwrap_or_default();
    contract::check(method, &url, status, &headers, &text);
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

pub fn get_json(url: &str) -> serde_json::Value {
    match agent().get(url).set("accept", "application/json").call() {
        Ok(r) => into_reply("GET", r).json,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

pub fn get(url: &str) -> Option<Reply> {
    match agent().get(url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Some(into_reply("GET", r)),
        Err(_) => None,
    }
}

/// An optional request body: (content type, bytes).
pub type Body<'a> = Option<(&'a str, &'a [u8])>;

/// Any method, an optional body; panics only on a transport error.
pub fn request(method: &str, url: &str, body: Body) -> Reply {
    request_with(method, url, body, &[])
}

/// Any method, an optional body and extra headers, never following a redirect; panics only on a
/// transport error.
pub fn request_with(method: &str, url: &str, body: Body, headers: &[(&str, &str)]) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build();
    let mut req = agent.request(method, url);
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let result = match body {
        Some((content_type, bytes)) => req.set("content-type", content_type).send_bytes(bytes),
        None => req.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => into_reply(method, r),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// A body sent with chunked transfer encoding (no Content-Length).
pub fn post_chunked(url: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let result = agent()
        .post(url)
        .set("content-type", content_type)
        .send(std::io::Cursor::new(body));
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => into_reply("POST", r),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// Runs `f` on each item in its own thread, all at once, and collects the results in order.
pub fn concurrently<T: Send + 'static, R: Send + 'static>(items: Vec<T>, f: fn(T) -> R) -> Vec<R> {
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| std::thread::spawn(move || f(item)))
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}
