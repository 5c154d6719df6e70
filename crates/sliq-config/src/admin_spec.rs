//! The `admin:` section: where the health and metrics endpoints listen, and where sliq's own
//! metrics go.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::Deserializer;

use crate::values::{Span, parse_str};

/// `admin:` in the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSpec {
    /// `host:port` of `/healthz`, `/readyz` and `/metrics`; absent: no endpoint (the
    /// `--admin-listen` flag sets or overrides it).
    #[serde(deserialize_with = "listen")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfMetricsMode {
    Prometheus,
    Otlp,
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
