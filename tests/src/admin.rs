//! Reading a running sliq's admin endpoints: plain HTTP GETs, and `/metrics` parsed by the
//! official Prometheus client's OpenMetrics parser (scripts/parse_openmetrics.py), not by
//! matching strings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One sample of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The samples of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with `labels` (0 when there is none: a counter not yet touched).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }
}

/// GET `http://127.0.0.1:<port><path>`: status and body.
pub async fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// Scrapes `/metrics` and parses it.
pub async fn scrape(port: u16) -> anyhow::Result<Scrape> {
    let (status, body) = get(port, "/metrics").await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}: {body}");
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &body)?;
    let parsed =
        crate::python::script_json("scripts/parse_openmetrics.py", &[file.path().as_os_str()])?;
    let samples = parsed
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| Sample {
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            labels: s["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    Ok(Scrape { samples })
}

/// Polls `check` every 300 ms until it returns `Some`, at most `within`; panics with `what` and
/// the last value seen otherwise.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!(
                    "{what} not reached within {}s; last: {last}",
                    within.as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
