use serde_json::{Value, json};

use crate::presets::passes_luhn;
use crate::{Action, Preset, RawPolicy, RedactError, Redactor, RuleSpec};

const KEY: &[u8] = b"test-key";

fn rule(pointers: &[&str], presets: &[Preset], patterns: &[&str], action: Action) -> RuleSpec {
    RuleSpec {
        pointers: pointers.iter().map(|p| (*p).to_owned()).collect(),
        presets: presets.to_vec(),
        patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        action,
    }
}

fn redactor(rules: &[RuleSpec]) -> Redactor {
    Redactor::new(rules, RawPolicy::Redact, Some(KEY)).unwrap()
}

fn redact(r: &Redactor, record: &Value) -> Value {
    let mut out = Vec::new();
    r.redact_record(record.to_string().as_bytes(), &mut out)
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// The text at /t after masking it with one preset.
fn masked(preset: Preset, text: &str) -> String {
    let r = redactor(&[rule(&["/t"], &[preset], &[], Action::Mask)]);
    redact(&r, &json!({ "t": text }))["t"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn check(preset: Preset, found: &[&str], missed: &[&str]) {
    let marker = preset.marker();
    for text in found {
        let line = format!("see {text} here");
        assert_eq!(
            masked(preset, &line),
            format!("see {marker} here"),
            "{} should be found whole",
            text
        );
    }
    for text in missed {
        assert_eq!(masked(preset, text), *text, "{} should be left alone", text);
    }
}

#[test]
fn emails_are_found_inside_text() {
    check(
        Preset::Email,
        &["jane.doe@example.com", "j+tag@mail.example.co.uk"],
        &["jane at example dot com", "@handle", "a@b"],
    );
}

#[test]
fn phones_need_a_phone_shape_and_enough_digits() {
    check(
        Preset::Phone,
        &[
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "+4915112345678",
        ],
        &[
            "2026-11-30",
            "order 12345",
            "call +1 555",
            "1.2.3.4",
            "10.0.0.1",
        ],
    );
}

#[test]
fn card_numbers_must_pass_luhn() {
    check(
        Preset::CreditCard,
        &[
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "4012888888881881",
            "378282246310005",
        ],
        // The same shapes with the last digit off by one fail the checksum; a longer number is
        // not a card number inside it.
        &[
            "4111 1111 1111 1112",
            "4012888888881882",
            "id 441111111111111111123",
        ],
    );
    assert!(passes_luhn("79927398713"));
    assert!(!passes_luhn("79927398710"));
}

#[test]
fn a_card_number_failing_luhn_is_not_read_as_a_phone_either() {
    let r = redactor(&[rule(
        &["/t"],
        &[Preset::CreditCard, Preset::Phone],
        &[],
        Action::Mask,
    )]);
    let out = redact(
        &r,
        &json!({"t": "card 4111 1111 1111 1112 and 4111 1111 1111 1111"}),
    );
    assert_eq!(out["t"], "card 4111 1111 1111 1112 and [credit_card]");
}

#[test]
fn ips_of_both_families_are_found_and_times_and_versions_are_not() {
    check(
        Preset::Ip,
        &[
            "10.0.0.1",
            "192.168.100.200",
            "2001:db8::8a2e:370:7334",
            "fe80::1",
            "::1",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "::ffff:192.0.2.128",
        ],
        &[
            "12:30:45",
            "999.1.1.1",
            "v1.2.3.4.5",
            "std::fs::read",
            "1.2.3",
        ],
    );
}

#[test]
fn api_keys_of_common_shapes_are_found() {
    check(
        Preset::ApiKey,
        &[
            "sk-proj-Abc123def456GHI789jkl012",
            "sk-ant-api03-abcdefghijklmnopqrst",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "xoxb-1234567890-abcdefghij",
            "Bearer abc.def-ghi_jkl",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        ],
        &["task-force", "sk-short", "AKIA123", "Bearer", "ghp_short"],
    );
}

#[test]
fn hash_is_the_hmac_sha256_of_the_find_so_equal_values_join() {
    let r = redactor(&[rule(&["/t", "/u"], &[Preset::Email], &[], Action::Hash)]);
    let out = redact(
        &r,
        &json!({"t": "from jane.doe@example.com", "u": "jane.doe@example.com"}),
    );
    // Python: hmac.new(b"test-key", b"jane.doe@example.com", hashlib.sha256).hexdigest()
    let expected = "hmac:6d478d476eced4d46713f2809a0aeb2b2ad5c328d96e35db35eb608f189d2d90";
    assert_eq!(out["t"], format!("from {expected}"));
    assert_eq!(out["u"], expected);
}

#[test]
fn custom_patterns_mask_or_hash_what_they_match() {
    let r = redactor(&[
        rule(&["/a"], &[], &[r"ACCT-\d{6}"], Action::Mask),
        rule(&["/b"], &[], &[r"ACCT-\d{6}"], Action::Hash),
    ]);
    let out = redact(&r, &json!({"a": "acct ACCT-123456.", "b": "ACCT-123456"}));
    assert_eq!(out["a"], "acct [redacted].");
    // Python: hmac.new(b"test-key", b"ACCT-123456", hashlib.sha256).hexdigest()
    assert_eq!(
        out["b"],
        "hmac:d650ef62189d83a732b0b5b7daffd7605bfa4118033f4a21f0e725b880ce20b4"
    );
}

#[test]
fn a_whole_field_is_masked_and_its_numbers_removed() {
    let r = redactor(&[rule(&["/metadata"], &[], &[], Action::Mask)]);
    let out = redact(
        &r,
        &json!({"id": "1", "metadata": {"email": "x@y.io", "age": 41, "tags": ["a", 7, true], "n": null}}),
    );
    assert_eq!(
        out,
        json!({"id": "1", "metadata": {"email": "[redacted]", "tags": ["[redacted]", null, null], "n": null}})
    );
}

#[test]
fn drop_removes_the_field_always_or_when_something_is_found() {
    let r = redactor(&[
        rule(&["/metadata/user_email"], &[], &[], Action::Drop),
        rule(&["/note", "/other"], &[Preset::Email], &[], Action::Drop),
        rule(&["/list/1"], &[], &[], Action::Drop),
    ]);
    let out = redact(
        &r,
        &json!({
            "metadata": {"user_email": "a@b.io", "plan": "pro"},
            "note": "mail a@b.io",
            "other": "nothing here",
            "list": ["x", "y", "z"],
        }),
    );
    assert_eq!(
        out,
        json!({"metadata": {"plan": "pro"}, "other": "nothing here", "list": ["x", null, "z"]})
    );
}

#[test]
fn pointers_follow_rfc_6901_escapes_and_absent_fields_are_left_alone() {
    let r = redactor(&[rule(
        &["/a~1b/c~0d", "/missing/deep"],
        &[],
        &[],
        Action::Drop,
    )]);
    let out = redact(&r, &json!({"a/b": {"c~d": "secret", "keep": 1}}));
    assert_eq!(out, json!({"a/b": {"keep": 1}}));
}

#[test]
fn the_raw_column_keeps_the_original_the_redacted_copy_or_nothing() {
    let original = br#"{"t":"a@b.io"}"#.as_slice();
    let rules = [rule(&["/t"], &[Preset::Email], &[], Action::Mask)];
    let mut redacted = Vec::new();
    for (policy, expected) in [
        (RawPolicy::Keep, Some(original.to_vec())),
        (RawPolicy::Redact, Some(br#"{"t":"[email]"}"#.to_vec())),
        (RawPolicy::Drop, None),
    ] {
        let r = Redactor::new(&rules, policy, None).unwrap();
        r.redact_record(original, &mut redacted).unwrap();
        assert_eq!(
            r.archived_raw(original, &redacted).map(<[u8]>::to_vec),
            expected,
            "raw: {policy:?}"
        );
    }
}

#[test]
fn bad_rules_are_refused_with_the_rule_and_the_pattern() {
    let err = Redactor::new(
        &[
            rule(&["/t"], &[], &["ok"], Action::Mask),
            rule(&["/t"], &[], &["(unclosed"], Action::Mask),
        ],
        RawPolicy::Redact,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RedactError::Pattern { rule: 1, pattern, .. } if pattern == "(unclosed"),
        "{err}"
    );
    assert!(err.to_string().contains("'(unclosed'"), "{err}");
    let err = Redactor::new(
        &[rule(&["/t"], &[], &[], Action::Hash)],
        RawPolicy::Redact,
        None,
    )
    .unwrap_err();
    assert_eq!(err, RedactError::MissingKey { rule: 0 });
}

#[test]
fn the_key_never_shows_in_debug() {
    let r = Redactor::new(
        &[rule(&["/t"], &[], &[], Action::Hash)],
        RawPolicy::Redact,
        Some(b"super-secret-key-value"),
    )
    .unwrap();
    let shown = format!("{r:?} {r:#?}");
    assert!(!shown.contains("super-secret"), "{shown}");
}
