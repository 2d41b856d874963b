//! `ledger-load`: drives a running `ledger-server` over HTTP with mixed
//! traffic (earning, redemptions, transfers, balance queries) or with
//! `/v1/batch` requests, from many keep-alive connections, and reports
//! throughput and latency percentiles (HdrHistogram).
//!
//! ```sh
//! ledger-load --url http://127.0.0.1:8080 --key KEY --setup --connections 256 --seconds 20
//! ledger-load --url http://127.0.0.1:8080 --key KEY --mode batch --batch-size 1000 --connections 8
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MERCHANTS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One command (or query) per request: 60% earning, 20% redemptions,
    /// 10% transfers, 10% balance queries.
    Single,
    /// `/v1/batch` requests of `--batch-size` commands (80% earning, 20%
    /// transfers).
    Batch,
}

/// Load generator for ledger-server.
#[derive(Debug, Parser)]
#[command(name = "ledger-load", about)]
struct Options {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin key.
    #[arg(long, env = "LEDGER_ADMIN_KEY", hide_env_values = true)]
    key: String,
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    mode: Mode,
    /// Concurrent keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Member accounts the traffic spreads over.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Configure a programme and four funded merchants first (on a fresh
    /// ledger).
    #[arg(long)]
    setup: bool,
}

/// A small deterministic generator per connection: traffic varies between
/// connections but repeats between runs.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Client {
    async fn connect(options: &Options) -> anyhow::Result<Client> {
        let host = options
            .url
            .strip_prefix("http://")
            .context("--url must start with http://")?
            .trim_end_matches('/')
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Client {
            sender,
            host,
            authorization: format!("Bearer {}", options.key),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", &self.authorization);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn setup(options: &Options) -> anyhow::Result<()> {
    let mut client = Client::connect(options).await?;
    let program = json!({"supply_cap": 1_000_000_000_000_000_u64});
    expect_created(
        client
            .send(Method::PUT, "/v1/program", Some(program.to_string()))
            .await?,
        "program",
    )?;
    for merchant in 0..MERCHANTS {
        let application = json!({"merchant_id": format!("m{merchant}"), "name": format!("Merchant {merchant}"),
            "currency": "EUR", "issue_price": "0.001", "redemption_value": "0.001"});
        expect_created(
            client
                .send(Method::POST, "/v1/merchants", Some(application.to_string()))
                .await?,
            "merchant",
        )?;
        expect_created(
            client
                .send(
                    Method::POST,
                    &format!("/v1/merchants/m{merchant}/approve"),
                    None,
                )
                .await?,
            "approval",
        )?;
        let deposit = json!({"amount": "1000000000000"});
        expect_created(
            client
                .send(
                    Method::POST,
                    &format!("/v1/merchants/m{merchant}/deposits"),
                    Some(deposit.to_string()),
                )
                .await?,
            "deposit",
        )?;
    }
    Ok(())
}

fn expect_created((status, body): (u16, Bytes), what: &str) -> anyhow::Result<()> {
    if status != 201 {
        bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

struct Tally {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    commands: u64,
    transport_errors: u64,
}

fn command(dice: &mut Dice, accounts: u64, order: &str, earning_share: u64) -> Value {
    let account = format!("member-{}", dice.below(accounts));
    let merchant = format!("m{}", dice.below(MERCHANTS as u64));
    if dice.below(100) < earning_share {
        json!({"type": "issuance", "account": account, "merchant_id": merchant, "order_ref": order, "points": 50 + dice.below(200)})
    } else {
        json!({"type": "transfer", "from": account, "to": format!("member-{}", dice.below(accounts)), "points": 1 + dice.below(5)})
    }
}

async fn drive(
    options: &Options,
    connection: usize,
    deadline: Instant,
    run: u64,
) -> anyhow::Result<Tally> {
    let mut client = Client::connect(options).await?;
    let mut dice =
        Dice(0x9e37_79b9_7f4a_7c15 ^ (connection as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let mut tally = Tally {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        statuses: BTreeMap::new(),
        commands: 0,
        transport_errors: 0,
    };
    let mut sequence = 0_u64;
    while Instant::now() < deadline {
        sequence += 1;
        let order = format!("r{run}-c{connection}-{sequence}");
        let (method, path, body, commands) = match options.mode {
            Mode::Batch => {
                let commands: Vec<Value> = (0..options.batch_size)
                    .map(|index| {
                        command(&mut dice, options.accounts, &format!("{order}-{index}"), 80)
                    })
                    .collect();
                (
                    Method::POST,
                    "/v1/batch".to_owned(),
                    Some(json!({"commands": commands}).to_string()),
                    options.batch_size as u64,
                )
            }
            Mode::Single => {
                let roll = dice.below(100);
                let account = format!("member-{}", dice.below(options.accounts));
                if roll < 60 {
                    let mut body = command(&mut dice, options.accounts, &order, 100);
                    body.as_object_mut().map(|fields| fields.remove("type"));
                    (
                        Method::POST,
                        "/v1/issuances".to_owned(),
                        Some(body.to_string()),
                        1,
                    )
                } else if roll < 80 {
                    let body = json!({"account": account, "merchant_id": format!("m{}", dice.below(MERCHANTS as u64)), "points": 1 + dice.below(20), "order_ref": order});
                    (
                        Method::POST,
                        "/v1/redemptions".to_owned(),
                        Some(body.to_string()),
                        1,
                    )
                } else if roll < 90 {
                    let mut body = command(&mut dice, options.accounts, &order, 0);
                    body.as_object_mut().map(|fields| fields.remove("type"));
                    (
                        Method::POST,
                        "/v1/transfers".to_owned(),
                        Some(body.to_string()),
                        1,
                    )
                } else {
                    (Method::GET, format!("/v1/accounts/{account}"), None, 0)
                }
            }
        };
        let started = Instant::now();
        match client.send(method, &path, body).await {
            Ok((status, _)) => {
                let micros = started.elapsed().as_micros() as u64;
                tally.latency.saturating_record(micros.max(1));
                *tally.statuses.entry(status).or_default() += 1;
                tally.commands += commands;
            }
            Err(_) => {
                tally.transport_errors += 1;
                client = Client::connect(options).await?;
            }
        }
    }
    Ok(tally)
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if options.setup {
            setup(&options).await?;
        }
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let options = std::sync::Arc::new(options);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(options.seconds);
        let tasks: Vec<_> = (0..options.connections)
            .map(|connection| {
                let options = std::sync::Arc::clone(&options);
                tokio::spawn(async move { drive(&options, connection, deadline, run).await })
            })
            .collect();
        let mut total = Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            statuses: BTreeMap::new(),
            commands: 0,
            transport_errors: 0,
        };
        for task in tasks {
            let tally = task.await??;
            total.latency.add(&tally.latency)?;
            for (status, count) in tally.statuses {
                *total.statuses.entry(status).or_default() += count;
            }
            total.commands += tally.commands;
            total.transport_errors += tally.transport_errors;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let requests = total.latency.len();
        let percentile = |quantile: f64| total.latency.value_at_quantile(quantile) as f64 / 1_000.0;
        let report = json!({
            "mode": format!("{:?}", options.mode).to_lowercase(),
            "connections": options.connections,
            "seconds": elapsed,
            "requests": requests,
            "requests_per_second": requests as f64 / elapsed,
            "commands_per_second": total.commands as f64 / elapsed,
            "statuses": total.statuses,
            "transport_errors": total.transport_errors,
            "latency_ms": {"p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
                           "p999": percentile(0.999), "max": total.latency.max() as f64 / 1_000.0},
        });
        let mut stdout = std::io::stdout().lock();
        std::io::Write::write_all(&mut stdout, format!("{report:#}\n").as_bytes())?;
        Ok(())
    })
}
