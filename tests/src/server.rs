//! A `ledger-server` process for HTTP tests: started on a free local port
//! over a data directory, stopped by SIGTERM or killed, restarted on the
//! same directory; and a small client with the admin key.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_KEY: &str = "test-admin-secret";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server. Killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub address: SocketAddr,
    data_dir: PathBuf,
    binary: PathBuf,
    extra_args: Vec<String>,
}

/// One HTTP answer: status, headers we care about, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The problem+json `code`, or "" for a success.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

impl Server {
    /// Starts the server binary on `data_dir` and waits until it answers.
    pub fn start(binary: &Path, data_dir: &Path, extra_args: &[&str]) -> Server {
        let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        let (child, address) = spawn(binary, data_dir, &extra_args);
        let server = Server {
            child,
            address,
            data_dir: data_dir.to_owned(),
            binary: binary.to_owned(),
            extra_args,
        };
        server.wait_until_up();
        server
    }

    fn wait_until_up(&self) {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(answer) = self.try_request("GET", "/healthz", None, &[])
                && answer.status == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not come up on {}", self.address);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// SIGKILL: no shutdown, no snapshot, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status once it stopped.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM runs");
        assert!(status.success(), "SIGTERM was delivered");
        self.child.wait().expect("the server exits")
    }

    /// Starts a new process on the same directory (after a kill or a stop).
    pub fn restart(&mut self) {
        self.kill();
        let (child, address) = spawn(&self.binary, &self.data_dir, &self.extra_args);
        self.child = child;
        self.address = address;
        self.wait_until_up();
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ureq::Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = self.url(path);
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.unwrap_or("").to_owned())
            .expect("a well-formed request");
        let mut response = agent.run(request)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.body_mut().read_to_string()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            content_type,
            body,
            text,
        })
    }

    /// A request with `key` as the bearer key (and a JSON body if given).
    pub fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra_headers: &[(&str, &str)],
    ) -> Answer {
        let bearer = format!("Bearer {key}");
        let mut headers = vec![("authorization", bearer.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        headers.extend_from_slice(extra_headers);
        let text = body.map(Value::to_string);
        self.try_request(method, path, text.as_deref(), &headers)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.call(ADMIN_KEY, method, path, body, &[])
    }
}

fn spawn(binary: &Path, data_dir: &Path, extra_args: &[String]) -> (Child, SocketAddr) {
    let address: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("a socket address");
    let child = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(address.to_string())
        .args(extra_args)
        .env("LEDGER_ADMIN_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    (child, address)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
