//! Expected numbers for the end-to-end tests, recounted from the generated records with serde_json
//! and sha2 alone (no sliq code), and the archive read back by DuckDB for comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sliq_gen::{GeneratedRecord, RecordKind};

use crate::python::duckdb_json;

/// The latency threshold of the test specs, in ms.
pub const LATENCY_THRESHOLD_MS: f64 = 4000.0;

/// What the records must produce, recounted from their JSON with no sliq code involved.
#[derive(Debug, Default, PartialEq)]
pub struct Expected {
    pub valid: u64,
    pub malformed: u64,
    /// (slo, service) → [good, bad]
    pub by_slo_service: BTreeMap<(String, String), [u64; 2]>,
    /// sha256 over the sorted lines "id sha256(raw)" of every valid record.
    pub archive_digest: String,
}

pub fn expected(records: &[GeneratedRecord]) -> Expected {
    let mut e = Expected::default();
    let mut lines = Vec::new();
    for r in records {
        if r.kind != RecordKind::Valid {
            e.malformed += 1;
            continue;
        }
        e.valid += 1;
        let v: Value = serde_json::from_slice(&r.payload).expect("valid records are JSON");
        let service = v["service"].as_str().expect("service").to_owned();
        let ok = match v["status"].as_str() {
            Some(s) => s == "ok",
            None => v.get("error").is_none_or(Value::is_null),
        };
        let avail = e
            .by_slo_service
            .entry(("availability".into(), service.clone()))
            .or_default();
        avail[usize::from(!ok)] += 1;
        if ok && let Some(latency) = v["latency_ms"].as_f64() {
            let lat = e
                .by_slo_service
                .entry(("latency".into(), service))
                .or_default();
            lat[usize::from(latency > LATENCY_THRESHOLD_MS)] += 1;
        }
        lines.push(format!(
            "{} {:x}",
            v["id"].as_str().expect("id"),
            Sha256::digest(&r.payload)
        ));
    }
    lines.sort();
    e.archive_digest = format!("{:x}", Sha256::digest(lines.join("\n").as_bytes()));
    e
}

/// Reads the archive with DuckDB: rows, distinct Kafka positions, and the same digest as `expected`.
pub fn archive_summary(dir: &Path) -> Value {
    duckdb_json(&format!(
        "rows = q(\"SELECT id, raw, kafka_partition, kafka_offset FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         lines = sorted(r['id'] + ' ' + hashlib.sha256(r['raw']).hexdigest() for r in rows)\n\
         print(json.dumps({{'rows': len(rows), 'positions': len({{(r['kafka_partition'], r['kafka_offset']) for r in rows}}), \
         'digest': hashlib.sha256('\\n'.join(lines).encode()).hexdigest()}}))",
        dir.display()
    ))
    .expect("duckdb reads the archive")
}

pub fn unfinished_files(dir: &Path) -> Vec<PathBuf> {
    crate::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "inprogress"))
        .collect()
}
