//! The canonical event schema agrees with what the generator writes and the decoder accepts, checked
//! by an independent validator (Python's `jsonschema`, draft 2020-12).

use sliq_core::{Decoder, FieldMap};
use sliq_gen::{GenConfig, Generator, MalformedKind, RecordKind};
use sliq_tests::python::json_schema_errors;

#[test]
fn generated_records_validate_against_the_schema_exactly_when_sliq_accepts_them() {
    let records: Vec<_> = Generator::new(GenConfig {
        malformed_ratio: 0.05,
        ..GenConfig::default()
    })
    .take(3000)
    .collect();
    // Only records that are JSON objects can be checked against an object schema.
    let checkable: Vec<_> = records
        .iter()
        .filter(|r| {
            !matches!(
                r.kind,
                RecordKind::Malformed(MalformedKind::NotJson | MalformedKind::NotObject)
            )
        })
        .collect();
    let schema = sliq_tests::repo_root().join("schemas/request-log.v1.schema.json");
    let documents: Vec<serde_json::Value> = checkable
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("checkable records are JSON"))
        .collect();
    let verdicts: Vec<bool> = json_schema_errors(&schema, &documents)
        .expect("python jsonschema")
        .iter()
        .map(Vec::is_empty)
        .collect();
    assert_eq!(verdicts.len(), checkable.len());
    let decoder = Decoder::new(FieldMap::default(), 1 << 20);
    let mut seen_invalid = 0;
    for (r, valid) in checkable.iter().zip(verdicts) {
        let accepted = decoder
            .parse(&r.payload)
            .and_then(|v| decoder.decode(&v).map(|_| ()))
            .is_ok();
        match r.kind {
            RecordKind::Valid => {
                assert!(valid, "{}", String::from_utf8_lossy(&r.payload));
                assert!(accepted);
            }
            // The schema states types and required fields; a bad timestamp string is only caught
            // by format checking, which validators leave optional.
            RecordKind::Malformed(MalformedKind::BadTimestamp) => assert!(!accepted),
            RecordKind::Malformed(_) => {
                assert!(!valid, "{}", String::from_utf8_lossy(&r.payload));
                assert!(!accepted);
                seen_invalid += 1;
            }
        }
    }
    assert!(seen_invalid > 20, "{seen_invalid}");
}
