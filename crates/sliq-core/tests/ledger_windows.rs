//! Readers that hand their parts on every cycle and a ledger that merges them close the same
//! windows with the same counts as one process that read everything: the ledger's exactness
//! rests on this. And a part arriving for a window the ledger closed is late exactly when its
//! partition had passed that window.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sliq_core::{Admission, SeriesId, SourceId, Verdict, WindowConfig, WindowCounts, Windows};

fn config() -> WindowConfig {
    WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 10_000,
        max_out_of_orderness_ms: 5_000,
    }
}

/// One record: its partition, event time and (series, good?) verdicts.
#[derive(Debug, Clone)]
struct Record {
    source: u32,
    ts_ms: i64,
    verdicts: Vec<(u32, bool)>,
    latency: Option<f64>,
}

fn verdicts(r: &Record) -> Vec<(SeriesId, Verdict)> {
    r.verdicts
        .iter()
        .map(|&(s, good)| (SeriesId(s), if good { Verdict::GOOD } else { Verdict::BAD }))
        .collect()
}

/// (window start, series) → [good, bad], and latency observations per window.
type Totals = (BTreeMap<(i64, u32), [u64; 2]>, BTreeMap<i64, u64>);

fn total(windows: &[WindowCounts], into: &mut Totals) {
    for w in windows {
        for c in &w.counts {
            let slot = into.0.entry((w.start_ms, c.series.0)).or_default();
            slot[0] += c.good;
            slot[1] += c.bad;
        }
        for (_, h) in &w.latencies {
            *into.1.entry(w.start_ms).or_default() += h.count;
        }
    }
}

/// Records per partition, each partition's event times within the out-of-orderness of its newest.
fn records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(
        (
            0u32..3,
            0i64..40_000,
            -4_000i64..0,
            prop::collection::vec((0u32..4, any::<bool>()), 1..3),
            prop::option::of(0.01f64..30.0),
        ),
        1..300,
    )
    .prop_map(|raw| {
        let mut clock = [0i64; 3];
        raw.into_iter()
            .map(|(source, step, jitter, verdicts, latency)| {
                let newest = &mut clock[source as usize];
                *newest += step;
                Record {
                    source,
                    ts_ms: (*newest + jitter).max(0),
                    verdicts,
                    latency,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn readers_and_a_ledger_close_what_one_process_closes(
        records in records(),
        cycle in 1usize..40,
    ) {
        let sources = [SourceId(0), SourceId(1), SourceId(2)];
        // One process: every record, windows closed once per cycle.
        let mut one = Windows::new(config());
        // Readers, one per partition, that never close; a ledger that merges their parts.
        let mut readers: Vec<Windows> = sources.iter().map(|_| Windows::new(config())).collect();
        let mut ledger = Windows::new(config());
        for s in sources {
            one.add_source(s);
            ledger.add_source(s);
        }
        let (mut expected, mut merged) = (Totals::default(), Totals::default());
        let (mut late_one, mut late_ledger) = (0u64, 0u64);
        for (i, r) in records.iter().enumerate() {
            let source = SourceId(r.source);
            let latency = r.latency.map(|l| (0, l));
            let v = verdicts(r);
            if one.add(source, i as i64, r.ts_ms, &v, &[], latency) == Admission::Late {
                late_one += 1;
            }
            prop_assert_eq!(
                readers[r.source as usize].add(source, i as i64, r.ts_ms, &v, &[], latency),
                Admission::Counted
            );
            if (i + 1) % cycle == 0 || i + 1 == records.len() {
                total(&one.close_ready(), &mut expected);
                for (reader, s) in readers.iter_mut().zip(sources) {
                    let late = ledger.apply_partial(s, reader.take_parts(s));
                    late_ledger += late.iter().map(|p| p.records).sum::<u64>();
                }
                total(&ledger.close_ready(), &mut merged);
            }
        }
        total(&one.close_all(), &mut expected);
        total(&ledger.close_all(), &mut merged);
        prop_assert_eq!(late_one, 0);
        prop_assert_eq!(late_ledger, 0);
        prop_assert_eq!(merged, expected);
    }
}

/// Hand-worked: size 60 s, lateness 10 s, out-of-orderness 5 s. The ledger closes [0, 60 s) once
/// both partitions passed 75 s. A part of it from partition 0, which had passed it, is late (its
/// records); one from partition 1, idle meanwhile and not past it, reopens the window.
#[test]
fn a_part_for_a_closed_window_is_late_only_if_its_partition_had_passed_it() {
    let (p0, p1) = (SourceId(0), SourceId(1));
    let good = [(SeriesId(0), Verdict::GOOD)];
    let mut reader0 = Windows::new(config());
    let mut reader1 = Windows::new(config());
    let mut ledger = Windows::new(config());
    reader0.add(p0, 0, 10_000, &good, &[], None);
    reader0.add(p0, 1, 80_000, &good, &[], None);
    reader1.add(p1, 0, 20_000, &good, &[], None);
    assert!(ledger.apply_partial(p0, reader0.take_parts(p0)).is_empty());
    assert!(ledger.apply_partial(p1, reader1.take_parts(p1)).is_empty());
    // p1 at 20 s holds [0, 60 s) open.
    assert!(ledger.close_ready().is_empty());
    ledger.set_idle(p1);
    let closed = ledger.close_ready();
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].start_ms, closed[0].counts[0].good), (0, 2));

    // Partition 0 had passed [0, 60 s) (80 − 5 ≥ 60 + 10): two more records of it are late.
    reader0.add(p0, 2, 30_000, &good, &[], None);
    reader0.add(p0, 3, 31_000, &good, &[], None);
    let late = ledger.apply_partial(p0, reader0.take_parts(p0));
    assert_eq!(late.iter().map(|p| p.records).sum::<u64>(), 2);
    // Partition 1 had not (20 s): its record reopens the window and is counted there.
    reader1.add(p1, 1, 40_000, &good, &[], None);
    assert!(ledger.apply_partial(p1, reader1.take_parts(p1)).is_empty());
    let reopened = ledger.close_ready();
    assert_eq!(reopened.len(), 1);
    assert_eq!((reopened[0].start_ms, reopened[0].counts[0].good), (0, 1));
}
