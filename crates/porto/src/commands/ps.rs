//! `porto ps`: the services of a running porto, from its admin listener.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::admin::Status;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// The admin address of the running porto (`porto up --admin`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,

    /// Print the raw `/status` JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PsArgs) -> anyhow::Result<()> {
    let url = format!("http://{}/status", args.admin);
    let body = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
        .get(&url)
        .call()
        .with_context(|| {
            format!("no porto answers at {url} (is `porto up` running with this --admin?)")
        })?
        .into_string()
        .context("reading /status")?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let status: Status = serde_json::from_str(&body).context("/status is not porto's JSON")?;
    print!("{}", table(&status));
    Ok(())
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

pub fn table(status: &Status) -> String {
    let mut out = format!(
        "porto {} on {}, up {}s, key-value store: {}\n",
        status.version, status.arch, status.uptime_seconds, status.kv
    );
    out.push_str(&format!(
        "{:<16} {:<23} {:<24} {:>9} {:>7} {:>8} {:>8} {:>9}\n",
        "SERVICE", "DIGEST", "URL", "SERVED", "ERR%", "P50 MS", "P99 MS", "IN FLIGHT"
    ));
    for service in &status.services {
        let url = service.urls.first().map_or("internal", String::as_str);
        let digest: String = service.digest.chars().take(23).collect();
        out.push_str(&format!(
            "{:<16} {:<23} {:<24} {:>9} {:>7.2} {:>8} {:>8} {:>9}\n",
            service.name,
            digest,
            url,
            service.served,
            service.error_rate * 100.0,
            ms(service.p50_ms),
            ms(service.p99_ms),
            service.in_flight
        ));
    }
    out
}
