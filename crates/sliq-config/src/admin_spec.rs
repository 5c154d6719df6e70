//! The `admin:` section: where the health and metrics endpoints listen, and where sliq's own
//! metrics go.

use std::net::SocketAddr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use crate::values::{Span, parse_str};

/// Health and metrics endpoints, and where sliq's own metrics go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSpec {
    /// `host:port` of `/healthz`, `/readyz` and `/metrics`; absent: no endpoint (the
    /// `--admin-listen` flag sets or overrides it).
    #[serde(deserialize_with = "listen")]
    #[schemars(schema_with = "listen_schema")]
    pub listen: Option<SocketAddr>,
    /// Which readers get the self-metrics.
    pub self_metrics: SelfMetricsMode,
    /// How often the self-metrics go out over OTLP.
    pub self_metrics_interval: Span,
}

impl Default for AdminSpec {
    fn default() -> Self {
        AdminSpec {
            listen: None,
            self_metrics: SelfMetricsMode::Prometheus,
            self_metrics_interval: Span(Duration::from_secs(10)),
        }
    }
}

/// `prometheus` (served on `/metrics`), `otlp` (sent to `export.otlp.endpoint`), or `both`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfMetricsMode {
    /// Served on `/metrics` for a Prometheus scrape (the default).
    Prometheus,
    /// Sent to `export.otlp.endpoint` every `self_metrics_interval`.
    Otlp,
    /// Both of the above.
    Both,
}

impl SelfMetricsMode {
    pub fn prometheus(self) -> bool {
        matches!(self, SelfMetricsMode::Prometheus | SelfMetricsMode::Both)
    }

    pub fn otlp(self) -> bool {
        matches!(self, SelfMetricsMode::Otlp | SelfMetricsMode::Both)
    }
}

/// What [`listen`] accepts: an IPv4 address and port, or an IPv6 one in brackets.
fn listen_schema(_: &mut SchemaGenerator) -> Schema {
    const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    const PORT: &str = "0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)";
    let pattern = format!(r"^(?:{OCTET}(?:\.{OCTET}){{3}}|\[[0-9A-Fa-f:.]+(?:%[0-9]+)?\]):{PORT}$");
    json_schema!({
        "description": "host:port of /healthz, /readyz and /metrics, with an IP: 127.0.0.1:9464 \
            (this machine only) or 0.0.0.0:9464 (every interface); absent: no endpoint \
            (--admin-listen sets or overrides it).",
        "type": "string",
        "pattern": pattern
    })
}

fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    // Refused inside the scalar's visitor, so the error carries the key's path and line.
    parse_str(d, "an address such as 127.0.0.1:9464", |text| {
        text.parse().map_err(|_| {
            format!(
                "{text:?} is not an address to listen on; write host:port with an IP, e.g. \
                 127.0.0.1:9464 (this machine only) or 0.0.0.0:9464 (every interface)"
            )
        })
    })
    .map(Some)
}
