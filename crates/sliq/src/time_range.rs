//! `--since` / `--until`: an event-time range of the archive, shared by the commands that read it.

use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct TimeRange {
    /// Only records at or after this event time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only records before this event time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
}

fn parse_time(flag: &str, value: Option<&String>) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .with_context(|| {
                    format!(
                        "--{flag} {v:?} is not an RFC 3339 time; write e.g. 2026-11-01T00:00:00Z"
                    )
                })
        })
        .transpose()
}

impl TimeRange {
    /// (from, to) in ms since the epoch, each optional.
    pub fn bounds(&self) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        Ok((
            parse_time("since", self.since.as_ref())?,
            parse_time("until", self.until.as_ref())?,
        ))
    }

    /// ` [since .. until)`, or nothing for the whole archive.
    pub fn label(&self) -> String {
        match (&self.since, &self.until) {
            (None, None) => String::new(),
            (s, u) => format!(
                " [{} .. {})",
                s.as_deref().unwrap_or("start"),
                u.as_deref().unwrap_or("end")
            ),
        }
    }
}
