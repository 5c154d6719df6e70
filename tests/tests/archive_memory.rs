//! The archive bounded in bytes, end to end: `sliq run` with small row groups and a small
//! `archive.max_buffered_bytes` reports its buffered bytes as `sliq.buffered.bytes`, never more
//! than the bound, and still archives every record exactly once (DuckDB reads it back).

use sliq_tests::otlp::{OtlpReceiver, gauge_points};
use sliq_tests::python::duckdb_json;
use sliq_tests::run::{
    assert_archived_and_committed, broker_with_topics, produce_records, start_sliq, wait_ok,
    write_spec,
};

const ROW_GROUP_BYTES: u64 = 64 << 10;
const MAX_BUFFERED_BYTES: u64 = 128 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_memory_bound_holds_and_every_record_is_archived_once() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    // About 15 MB of rows through four open files whose builders alone could hold 256 KiB.
    let (_, want) = produce_records(&broker, 23, 30_000).await;
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (_dir, spec_path, archive) = write_spec(&broker, "it-bounded", &endpoint);
    let spec = std::fs::read_to_string(&spec_path).expect("spec");
    let bounded = spec.replace(
        "  max_age: 5s\n",
        &format!(
            "  max_age: 5s\n  row_group_bytes: {ROW_GROUP_BYTES}\n  max_buffered_bytes: \
             {MAX_BUFFERED_BYTES}\n"
        ),
    );
    assert_ne!(
        bounded, spec,
        "the spec has the archive section this test extends"
    );
    std::fs::write(&spec_path, bounded).expect("spec");
    wait_ok(
        start_sliq(&spec_path, "it-a", &["--exit-on-idle", "6s"]).await,
        "sliq",
    )
    .await;

    let points = gauge_points(&receiver.requests(), "sliq.buffered.bytes");
    let archive_peaks: Vec<f64> = points
        .iter()
        .filter(|p| p.attributes["sliq.stage"] == "archive")
        .map(|p| p.value)
        .collect();
    // More than one row group waited at some point: the bound, not the row group size, held it.
    assert!(
        archive_peaks.iter().any(|b| *b > ROW_GROUP_BYTES as f64),
        "the archive's memory was never under pressure: {archive_peaks:?}"
    );
    assert!(
        archive_peaks
            .iter()
            .all(|b| *b <= MAX_BUFFERED_BYTES as f64),
        "buffered bytes beyond {MAX_BUFFERED_BYTES}: {archive_peaks:?}"
    );
    assert!(
        points
            .iter()
            .any(|p| p.attributes["sliq.stage"] == "export"),
        "the export backlog is reported too"
    );

    assert_archived_and_committed(&broker, "it-bounded", &archive, &want);
    // Rows went out in row groups as the builders filled, not as one group per file.
    let layout = duckdb_json(&format!(
        "rows = q(\"SELECT count(DISTINCT file_name) AS files, count(DISTINCT (file_name, \
         row_group_id)) AS groups FROM parquet_metadata('{}/**/*.parquet')\")\n\
         print(json.dumps(rows[0]))",
        archive.display()
    ))
    .expect("duckdb reads the archive's metadata");
    let (files, groups) = (
        layout["files"].as_u64().expect("files"),
        layout["groups"].as_u64().expect("groups"),
    );
    assert!(groups > 2 * files, "{groups} row groups in {files} files");
}
