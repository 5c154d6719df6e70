//! `archive.redact` end to end: records carrying emails, phone numbers, card numbers, IPs, API
//! keys and account numbers go through the real binary and a Nisshi broker; DuckDB then searches
//! every column of the whole archive (raw bytes included) for each planted value, Python's `hmac`
//! recomputes the hashes, and the exported counters must equal a recount of the records as they
//! arrived. The run is made under umask 000, so the file modes it leaves are sliq's own.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::python::duckdb_json;
use sliq_tests::recount::LATENCY_THRESHOLD_MS;
use sliq_tests::run::{broker_with_topics, exported_by_slo_service, record_counts, spec};

const KEY: &str = "redact-key-7f3a9c1e5b2d";
const RECORDS: usize = 60;

/// What the rules must remove: in prompts, responses, `/metadata` and error messages.
const PLANTED: &[&str] = &[
    "jane.doe@example.com",
    "bob.smith@corp.example.org",
    "+44 20 7946 0958",
    "(555) 123-4567",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "203.0.113.45",
    "2001:db8::8a2e:370:7334",
    "sk-proj-Abc123def456GHI789jkl012",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "ACCT-483920",
    "carol@example.net",
    "+1 555 010 9999",
    "dave@example.io",
];

/// A 16-digit number failing the Luhn check: must stay.
const NOT_A_CARD: &str = "4111 1111 1111 1112";

const REDACT: &str = "  redact:
    key: ${SLIQ_REDACT_KEY}
    rules:
      - name: text-pii
        fields: [prompt, response]
        presets: [email, phone, credit_card, ip, api_key]
        action: mask
      - name: accounts
        fields: [prompt, response]
        patterns: ['ACCT-\\d{6}']
        action: hash
      - name: user
        fields: [/metadata/user_email]
        action: hash
      - name: phone
        fields: [/metadata/phone]
        action: mask
      - name: error-pii
        fields: [/error]
        presets: [email]
        action: drop
";

fn record(i: usize) -> Value {
    let service = ["chat", "search"][i % 2];
    let prompt = format!(
        "mail {} or call {}; card {} (not {NOT_A_CARD}); from {} and {}; account ACCT-483920",
        PLANTED[i % 2],
        PLANTED[2 + i % 2],
        PLANTED[4 + i % 2],
        PLANTED[6],
        PLANTED[7],
    );
    let response = format!(
        "use key {} with {} or {}; account ACCT-483920",
        PLANTED[8], PLANTED[9], PLANTED[10]
    );
    let mut r = json!({
        "id": format!("r{i:03}"),
        "ts": 1_767_225_600_000_i64 + i as i64 * 1000,
        "service": service,
        "model": "m1",
        "latency_ms": 500 + i * 100,
        "request": {"text": prompt},
        "response": {"text": response},
        "metadata": {"user_email": "carol@example.net", "phone": "+1 555 010 9999", "plan": "pro"},
    });
    // Every fifth request failed, its message naming a user: dropping `/error` from what is kept
    // must not make it count as a success.
    if i.is_multiple_of(5) {
        r["error"] = json!({"type": "server_error", "message": "no quota for dave@example.io"});
    }
    r
}

/// (slo, service) → [good, bad], from the records as they arrived.
fn recount(records: &[Value]) -> BTreeMap<(String, String), [u64; 2]> {
    let mut want: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    for r in records {
        let service = r["service"].as_str().expect("service").to_owned();
        let ok = r.get("error").is_none();
        want.entry(("availability".into(), service.clone()))
            .or_default()[usize::from(!ok)] += 1;
        if ok {
            let slow = r["latency_ms"].as_f64().expect("latency") > LATENCY_THRESHOLD_MS;
            want.entry(("latency".into(), service)).or_default()[usize::from(slow)] += 1;
        }
    }
    want
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every folder and file under `root` (itself included) with its mode.
fn modes_under(root: &Path) -> Vec<(String, bool, u32)> {
    let mut out = vec![(root.display().to_string(), true, mode(root))];
    for entry in std::fs::read_dir(root).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(modes_under(&path));
        } else {
            out.push((path.display().to_string(), false, mode(&path)));
        }
    }
    out
}

/// Runs `sliq` with `args` under umask 000 and the key in the environment; returns its status
/// and everything it printed.
fn sliq_under_umask_0(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(sliq_tests::sliq_binary())
        .args(args)
        .env("SLIQ_REDACT_KEY", KEY)
        .env("SLIQ_LOG", "debug")
        .output()
        .expect("sliq runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_keeps_no_planted_value_and_counts_are_unchanged() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let state = dir.path().join("state");
    let spec_path = dir.path().join("spec.yaml");
    let text = spec(
        &broker,
        "it-privacy",
        &format!("    endpoint: {}", receiver.endpoint()),
        &archive,
    )
    .replace("state:\n", &format!("{REDACT}state:\n"));
    std::fs::write(&spec_path, text).expect("spec");

    let records: Vec<Value> = (0..RECORDS).map(record).collect();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    for r in &records {
        let payload = r.to_string();
        let id = r["id"].as_str().expect("id");
        producer
            .send(
                FutureRecord::to("logs").key(id).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }

    let spec_arg = spec_path.to_str().expect("utf-8 path");
    let (status, validated) = sliq_under_umask_0(&["validate", "--config", spec_arg]);
    assert!(status.success(), "{validated}");
    assert!(validated.contains("archive.redact: 5 rules"), "{validated}");
    let (status, printed) = sliq_under_umask_0(&[
        "run",
        "--config",
        spec_arg,
        "--instance-id",
        "it-privacy",
        "--exit-on-idle",
        "6s",
    ]);
    assert!(status.success(), "{printed}");
    for output in [&validated, &printed] {
        assert!(!output.contains(KEY), "the key was printed: {output}");
    }

    // Judged on the records as they arrived: failed requests stay failed although their error
    // object is not kept.
    assert_eq!(exported_by_slo_service(&receiver), recount(&records));
    assert_eq!(
        record_counts(&receiver)["it-privacy"]["accepted"],
        RECORDS as u64
    );

    // Every column of every row, as text (raw bytes decoded), searched for every planted value
    // and the key; the hashes recomputed with Python's hmac.
    let planted = json!(
        PLANTED
            .iter()
            .chain([&KEY, &NOT_A_CARD])
            .collect::<Vec<_>>()
    );
    let found = duckdb_json(&format!(
        "import hmac\n\
         rows = q(\"SELECT * FROM read_parquet('{archive}/**/*.parquet', hive_partitioning = true)\")\n\
         def text(v):\n    return v.decode('utf-8') if isinstance(v, bytes) else str(v)\n\
         texts = [text(v) for r in rows for v in r.values()]\n\
         planted = {planted}\n\
         h = lambda s: 'hmac:' + hmac.new({key:?}.encode(), s.encode(), hashlib.sha256).hexdigest()\n\
         raws = [json.loads(r['raw']) for r in rows]\n\
         print(json.dumps({{\n\
           'rows': len(rows),\n\
           'found': sorted(p for p in planted if any(p in t for t in texts)),\n\
           'user_hash_ok': sum(x['metadata']['user_email'] == h('carol@example.net') for x in raws),\n\
           'account_hash_ok': sum(r['request_text'].endswith('account ' + h('ACCT-483920')) \
                                  and r['response_text'].endswith('account ' + h('ACCT-483920')) for r in rows),\n\
           'phone_masked': sum(x['metadata'] == {{'user_email': h('carol@example.net'), 'phone': '[redacted]', 'plan': 'pro'}} for x in raws),\n\
           'failed': sum(r['status'] == 'error' for r in rows),\n\
           'errors_kept': sum(r['error_type'] is not None or r['error_message'] is not None for r in rows),\n\
           'masked_prompt': rows[0]['request_text'] if rows else None,\n\
         }}))",
        archive = archive.display(),
        key = KEY,
    ))
    .expect("duckdb reads the archive");
    assert_eq!(found["rows"], RECORDS);
    // Only the near miss is still there: the search would have found the others.
    assert_eq!(found["found"], json!([NOT_A_CARD]), "{found}");
    assert_eq!(found["user_hash_ok"], RECORDS, "{found}");
    assert_eq!(found["account_hash_ok"], RECORDS, "{found}");
    assert_eq!(found["phone_masked"], RECORDS, "{found}");
    assert_eq!(found["errors_kept"], 0, "{found}");
    // The status is the record's own, not derived again from the redacted copy.
    assert_eq!(found["failed"], RECORDS.div_ceil(5), "{found}");
    let prompt = found["masked_prompt"].as_str().expect("a prompt");
    for marker in ["[email]", "[phone]", "[credit_card]", "[ip]"] {
        assert!(prompt.contains(marker), "{marker} missing in {prompt}");
    }

    // Modes, set by sliq although the process ran under umask 000.
    for (path, is_dir, m) in modes_under(&archive) {
        assert_eq!(m, if is_dir { 0o750 } else { 0o640 }, "{path}");
    }
    let state_modes = modes_under(&state);
    assert!(state_modes.len() > 3, "{state_modes:?}");
    for (path, is_dir, m) in state_modes {
        assert_eq!(m, if is_dir { 0o700 } else { 0o600 }, "{path}");
    }
}
