//! Every event time that can reach the archive is readable by DuckDB, pyarrow and Polars.
//!
//! The decoder accepts `ts` from `MIN_EVENT_TS_MS` (0001-01-01T00:00:00Z) to `MAX_EVENT_TS_MS`
//! (9999-12-31T23:59:59.999Z) and refuses one ms beyond either end with `bad_timestamp`. Records at
//! both ends (as epoch ms and as RFC 3339), at 0, at -1 and in 2026 are decoded, archived with
//! `sliq_archive::Archive`, published, and read back from the whole Hive-partitioned folder by each
//! reader in the venv's Python. Each reader must return every row, with `ts` and `ingested_at`
//! equal to the expected instants both as its own epoch-ms conversion (DuckDB `epoch_ms`, pyarrow
//! cast to int64 ms, Polars `.dt.epoch('ms')`) and as Python `datetime` objects turned into epoch
//! ms by integer arithmetic in Python; the `date`/`hour` partition values must match `ts`.
//!
//! One limit, reported rather than hidden: DuckDB's Python API makes `datetime`s of a `TIMESTAMPTZ`
//! in its session TimeZone (the machine's zone by default), and where that local time falls in year
//! 0 or 10000 (0001-01-01T00:00Z west of UTC, 9999-12-31T23:59:59.999Z east of it) it returns a
//! `str` instead. DuckDB's own values (`epoch_ms`, SQL) are exact in every zone; the test pins the
//! session to UTC for the `datetime` check and prints which ids come back as `str` elsewhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};
use sliq_archive::{Archive, ArchiveConfig, SourcePosition};
use sliq_core::{Decoder, FieldMap, MAX_EVENT_TS_MS, MIN_EVENT_TS_MS};
use sliq_tests::python::duckdb_json;

/// Epoch ms of a UTC calendar time, computed with chrono's calendar (not the decoder's parser).
fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|date| date.and_hms_milli_opt(h, mi, s, ms))
        .expect("a valid calendar time")
        .and_utc()
        .timestamp_millis()
}

fn record(id: &str, ts: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "ts": ts, "service": "chat", "latency_ms": 12.5}))
        .expect("serialisable")
}

fn decoder() -> Decoder {
    Decoder::new(FieldMap::default(), 1 << 20)
}

/// The readers' shared program: prints, per reader, its `ts` type and its rows (or the error it
/// raised, so a reader that cannot represent a value is named rather than hidden).
const READERS: &str = r#"
import traceback
from datetime import datetime, date, timezone, timedelta
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
import polars as pl

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)

def py_ms(dt):
    # Integer arithmetic on Python datetimes; a naive datetime would be ambiguous, so refuse it.
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f'naive datetime {dt!r}')
    return (dt - EPOCH) // ONE_MS

def text(v):
    return v.isoformat() if isinstance(v, date) else str(v)

GLOB = f"read_parquet('{DIR}/**/*.parquet', hive_partitioning = true)"

def duck_in(zone):
    con = duckdb.connect()
    con.sql(f"SET TimeZone = '{zone}'")
    return con

def duck():
    # DuckDB's Python API turns a TIMESTAMPTZ into a datetime in the session TimeZone (the machine's
    # zone by default); where that local time falls in year 0 or 10000 it returns a str instead. So
    # the session is pinned to UTC, and the ids that come back as str in two other zones are reported.
    rel = duck_in('UTC').sql(f"SELECT id, ts, ingested_at, epoch_ms(ts) AS ts_ms, "
                             f"epoch_ms(ingested_at) AS ing_ms, date, hour, typeof(ts) AS ts_type FROM {GLOB}")
    cols = rel.columns
    rows = [dict(zip(cols, r)) for r in rel.fetchall()]
    elsewhere = {zone: sorted(i for i, ts in duck_in(zone).sql(f"SELECT id, ts FROM {GLOB}").fetchall()
                              if not isinstance(ts, datetime))
                 for zone in ['America/New_York', 'Asia/Tokyo']}
    return {'ts_type': rows[0]['ts_type'] if rows else None, 'not_datetime_outside_utc': elsewhere, 'rows': [
        {'id': r['id'], 'ts_ms': r['ts_ms'], 'ts_py_ms': py_ms(r['ts']), 'ing_ms': r['ing_ms'],
         'ing_py_ms': py_ms(r['ingested_at']), 'date': text(r['date']), 'hour': int(r['hour'])}
        for r in rows]}

def arrow():
    t = ds.dataset(DIR, format='parquet', partitioning='hive').to_table()
    as_ms = lambda col: pc.cast(t.column(col).cast(pa.timestamp('ms', tz='UTC')), pa.int64()).to_pylist()
    cols = {'id': t.column('id').to_pylist(), 'ts_ms': as_ms('ts'), 'ing_ms': as_ms('ingested_at'),
            'ts_py': t.column('ts').to_pylist(), 'ing_py': t.column('ingested_at').to_pylist(),
            'date': t.column('date').to_pylist(), 'hour': t.column('hour').to_pylist()}
    return {'ts_type': str(t.schema.field('ts').type), 'rows': [
        {'id': cols['id'][i], 'ts_ms': cols['ts_ms'][i], 'ts_py_ms': py_ms(cols['ts_py'][i]),
         'ing_ms': cols['ing_ms'][i], 'ing_py_ms': py_ms(cols['ing_py'][i]),
         'date': text(cols['date'][i]), 'hour': int(cols['hour'][i])}
        for i in range(t.num_rows)]}

def polars():
    df = pl.read_parquet(f'{DIR}/**/*.parquet', hive_partitioning=True)
    ms = df.select(pl.col('id'), pl.col('ts').dt.epoch('ms').alias('ts_ms'),
                   pl.col('ingested_at').dt.epoch('ms').alias('ing_ms'), pl.col('date'), pl.col('hour'))
    ts_py, ing_py = df['ts'].to_list(), df['ingested_at'].to_list()
    return {'ts_type': str(df.schema['ts']), 'rows': [
        dict(r, ts_py_ms=py_ms(ts_py[i]), ing_py_ms=py_ms(ing_py[i]), date=text(r['date']), hour=int(r['hour']))
        for i, r in enumerate(ms.iter_rows(named=True))]}

out = {}
for name, read in [('duckdb', duck), ('pyarrow', arrow), ('polars', polars)]:
    try:
        out[name] = read()
    except Exception:
        out[name] = {'error': traceback.format_exc()}
out['versions'] = {'duckdb': duckdb.__version__, 'pyarrow': pa.__version__, 'polars': pl.__version__}
print(json.dumps(out))
"#;

#[test]
fn every_accepted_timestamp_is_read_back_by_duckdb_pyarrow_and_polars() {
    let min = utc_ms(1, 1, 1, 0, 0, 0, 0);
    let max = utc_ms(9999, 12, 31, 23, 59, 59, 999);
    assert_eq!((MIN_EVENT_TS_MS, MAX_EVENT_TS_MS), (min, max));
    let ordinary = utc_ms(2026, 3, 14, 15, 9, 26, 535);
    // (id, ts as written in the record, the instant it stands for)
    let cases: Vec<(&str, Value, i64)> = vec![
        ("min-ms", json!(MIN_EVENT_TS_MS), min),
        ("min-rfc3339", json!("0001-01-01T00:00:00Z"), min),
        ("max-ms", json!(MAX_EVENT_TS_MS), max),
        ("max-rfc3339", json!("9999-12-31T23:59:59.999Z"), max),
        ("epoch", json!(0), 0),
        ("minus-1ms", json!(-1), -1),
        ("y2026-rfc3339", json!("2026-03-14T15:09:26.535Z"), ordinary),
        ("y2026-ms", json!(ordinary), ordinary),
    ];

    // One ms beyond either end is refused (a year-10000 instant has no RFC 3339 spelling).
    let d = decoder();
    for beyond in [
        json!(MIN_EVENT_TS_MS - 1),
        json!(MAX_EVENT_TS_MS + 1),
        json!("0000-12-31T23:59:59.999Z"),
    ] {
        let raw = record("beyond", &beyond);
        let parsed = d.parse(&raw).expect("JSON");
        let refused = d.decode(&parsed).expect_err("out of range");
        assert_eq!(refused.code(), "bad_timestamp", "{beyond}: {refused}");
    }

    // Archive every case; ingested_at differs per row so each reader's value is checked per row.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut archive = Archive::new(
        ArchiveConfig {
            dir: dir.path().to_path_buf(),
            max_rows: 1_000,
            max_age: Duration::from_secs(60),
            zstd_level: 3,
            ..ArchiveConfig::default()
        },
        &[],
    )
    .expect("archive");
    let ingested_base = utc_ms(2026, 11, 30, 6, 0, 0, 0);
    let mut expected = BTreeMap::new();
    for (offset, (id, ts, ms)) in (0_i64..).zip(&cases) {
        let raw = record(id, ts);
        let parsed = d.parse(&raw).expect("JSON");
        let event = d.decode(&parsed).expect("accepted");
        assert_eq!(event.ts_ms, *ms, "{id}: decoded ts");
        let ingested = ingested_base + offset;
        archive
            .append(
                SourcePosition {
                    topic: "logs",
                    partition: 0,
                    offset,
                },
                &event,
                Some(&raw),
                Some(sliq_core::Admission::Counted),
                ingested,
                Instant::now(),
            )
            .expect("append");
        let start = DateTime::from_timestamp_millis(*ms).expect("in chrono's range");
        expected.insert(
            (*id).to_owned(),
            json!({
                "id": id, "ts_ms": ms, "ts_py_ms": ms, "ing_ms": ingested, "ing_py_ms": ingested,
                "date": start.format("%Y-%m-%d").to_string(),
                "hour": start.format("%H").to_string().parse::<i64>().expect("hour"),
            }),
        );
    }
    let closed = archive.close_all().expect("close");
    archive.publish_pending().expect("publish");
    assert_eq!(closed.iter().map(|f| f.rows).sum::<usize>(), cases.len());
    assert_published(dir.path());

    let out = duckdb_json(&format!(
        "DIR = {}\n{READERS}",
        json!(dir.path().to_string_lossy())
    ))
    .expect("python runs the readers");
    eprintln!("versions: {}", out["versions"]);
    let mut failures = Vec::new();
    for reader in ["duckdb", "pyarrow", "polars"] {
        let got = &out[reader];
        if let Some(error) = got.get("error") {
            failures.push(format!(
                "{reader} could not read the archive:\n{}",
                error.as_str().unwrap_or_default()
            ));
            continue;
        }
        let rows = got["rows"].as_array().expect("rows");
        let by_id: BTreeMap<String, Value> = rows
            .iter()
            .map(|r| (r["id"].as_str().expect("id").to_owned(), r.clone()))
            .collect();
        eprintln!(
            "{reader}: {} rows, ts type {}, ts ms {:?}",
            rows.len(),
            got["ts_type"],
            by_id.values().map(|r| &r["ts_ms"]).collect::<Vec<_>>()
        );
        if let Some(note) = got.get("not_datetime_outside_utc") {
            eprintln!("{reader}: ids fetched as str, not datetime, in other session zones: {note}");
        }
        if rows.len() != cases.len() || by_id != expected {
            failures.push(format!(
                "{reader} read {} rows (want {}):\n got {by_id:#?}\nwant {expected:#?}",
                rows.len(),
                cases.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Only final-named files remain: every row is visible to the readers' glob.
fn assert_published(dir: &Path) {
    let unfinished = sliq_tests::recount::unfinished_files(dir);
    assert!(unfinished.is_empty(), "unpublished: {unfinished:?}");
}
