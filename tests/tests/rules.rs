//! `sliq rules` as Prometheus runs it: `promtool check rules` accepts the file, and
//! `promtool test rules` replays three days of counters (two instances each) at burn rates chosen
//! around every threshold of the SRE workbook, expecting exactly the alerts that hand arithmetic
//! predicts: a fast burn pages, a slow burn tickets, a burn below budget stays silent, and low
//! traffic does not page; each alert carries the SLO's owner, SLA, runbook and escalation.

use std::fmt::Write as _;

use sliq_tests::promtool::promtool;

const SPEC: &str = "\
source:
  kafka: { brokers: 127.0.0.1:9092, topics: [ai], dead_letter_topic: ai-dlq }
slos:
  - name: chat-availability
    objective: 0.999
    sla: 0.995
    owner: team-chat
    runbook: https://runbooks.example.com/chat-availability
    escalation: [chat on-call, 'page {{ the lead }}']
    dimensions: [service]
    sli: { availability: {} }
";

/// Minutes of input: 73 hours, so the 3-day window is full at the end.
const MINUTES: u32 = 73 * 60;

/// One service's traffic: phases of (minutes, events per minute, bad events per minute), the
/// last ending at the evaluation time. The objective is 99.9%, so the error budget is 0.001 and a
/// burn rate of k means k bad events per 1000.
struct Service {
    name: &'static str,
    phases: &'static [(u32, f64, f64)],
    /// The alerts expected at the end, as (severity, windows, factor as the workbook writes it).
    fires: &'static [(&'static str, &'static str, &'static str)],
}

/// Thresholds, for 30 days (43,200 minutes): 2% in 1h → 0.02 × 720 = 14.4; 5% in 6h →
/// 0.05 × 120 = 6; 10% in 1d → 0.1 × 30 = 3; 10% in 3d → 0.1 × 10 = 1.
const PAGE_1H: (&str, &str, &str) = ("page", "1h/5m", "14.4");
const PAGE_6H: (&str, &str, &str) = ("page", "6h/30m", "6");
const TICKET_1D: (&str, &str, &str) = ("ticket", "1d/2h", "3");
const TICKET_3D: (&str, &str, &str) = ("ticket", "3d/6h", "1");

const SERVICES: &[Service] = &[
    // 20× for the last hour: 1h and 5m burn 20 > 14.4 → page. 6h: 20 × 60/360 = 3.3 < 6;
    // 1d: 20/24 = 0.83 < 3; 3d: 20/72 = 0.28 < 1.
    Service {
        name: "fast",
        phases: &[(MINUTES - 60, 1000.0, 0.0), (60, 1000.0, 20.0)],
        fires: &[PAGE_1H],
    },
    // 12× for the last hour: 12 < 14.4, and 6h: 2, 1d: 0.5, 3d: 0.17 → silent.
    Service {
        name: "brisk",
        phases: &[(MINUTES - 60, 1000.0, 0.0), (60, 1000.0, 12.0)],
        fires: &[],
    },
    // 8× for the last 6h: 1h 8 < 14.4; 6h and 30m 8 > 6 → page. 1d: 8 × 6/24 = 2 < 3;
    // 3d: 8/12 = 0.67 < 1.
    Service {
        name: "medium",
        phases: &[(MINUTES - 360, 1000.0, 0.0), (360, 1000.0, 8.0)],
        fires: &[PAGE_6H],
    },
    // 5× for the last 6h: 5 < 6; 1d: 1.25 < 3; 3d: 0.42 < 1 → silent.
    Service {
        name: "steady",
        phases: &[(MINUTES - 360, 1000.0, 0.0), (360, 1000.0, 5.0)],
        fires: &[],
    },
    // 4× for the last day: 1h, 6h: 4 < 6; 1d and 2h: 4 > 3 → ticket; 3d: 4 × 24/72 = 1.33 > 1 and
    // 6h: 4 > 1 → ticket.
    Service {
        name: "slow",
        phases: &[(MINUTES - 1440, 1000.0, 0.0), (1440, 1000.0, 4.0)],
        fires: &[TICKET_1D, TICKET_3D],
    },
    // 2× throughout: 1d 2 < 3; 3d and 6h 2 > 1 → ticket.
    Service {
        name: "slower",
        phases: &[(MINUTES, 1000.0, 2.0)],
        fires: &[TICKET_3D],
    },
    // 0.9× throughout, below budget: 0.9 < 1 everywhere → silent.
    Service {
        name: "within",
        phases: &[(MINUTES, 1000.0, 0.9)],
        fires: &[],
    },
    // 10 events an hour, 2 of them bad: burn 200 everywhere, but 1h holds 10 and 6h 60 events,
    // under the guard of 100 → no page; 1d holds 240 and 3d 720 → both tickets.
    Service {
        name: "quiet",
        phases: &[(MINUTES, 10.0 / 60.0, 2.0 / 60.0)],
        fires: &[TICKET_1D, TICKET_3D],
    },
];

/// A counter's samples, one a minute from 0, in promtool's expanding notation.
fn counter(phases: &[(u32, f64)]) -> String {
    let mut out = String::new();
    let mut value = 0.0;
    for (i, &(minutes, per_minute)) in phases.iter().enumerate() {
        if i == 0 {
            // 0, r, 2r, … r × minutes: minutes + 1 samples.
            write!(out, "0+{per_minute}x{minutes} ").expect("a String takes writes");
        } else {
            // The next minutes samples, continuing from the last value.
            write!(out, "{}+{per_minute}x{} ", value + per_minute, minutes - 1)
                .expect("a String takes writes");
        }
        value += per_minute * f64::from(minutes);
    }
    out.trim_end().to_owned()
}

/// The input series: each service's events split over two instances, instance `a` with half the
/// events (all good), instance `b` with the other half (the bad ones among them), so only the sum
/// over instances has the service's burn rate.
fn input_series() -> String {
    let mut out = String::new();
    for s in SERVICES {
        let half = |f: fn(f64, f64) -> f64| -> Vec<(u32, f64)> {
            s.phases
                .iter()
                .map(|&(m, all, bad)| (m, f(all, bad)))
                .collect()
        };
        for (instance, outcome, phases) in [
            ("a", "good", half(|all, _| all / 2.0)),
            ("a", "bad", half(|_, _| 0.0)),
            ("b", "good", half(|all, bad| all / 2.0 - bad)),
            ("b", "bad", half(|_, bad| bad)),
        ] {
            writeln!(
                out,
                "      - series: 'sliq_slo_events_total{{job=\"sliq\",instance=\"{instance}\",\
                 sliq_slo_name=\"chat-availability\",sliq_slo_outcome=\"{outcome}\",\
                 service=\"{}\"}}'\n        values: '{}'",
                s.name,
                counter(&phases)
            )
            .expect("a String takes writes");
        }
    }
    out
}

fn expected_alerts() -> String {
    let mut out = String::new();
    for s in SERVICES {
        for (severity, windows, factor) in s.fires {
            let (long, short) = windows.split_once('/').expect("long/short");
            // The budget share each rule lets burn in its long window.
            let share = match *windows {
                "1h/5m" => "2",
                "6h/30m" => "5",
                _ => "10",
            };
            writeln!(
                out,
                "          - exp_labels: {{severity: {severity}, sliq_window: \"{windows}\", \
                 sliq_slo_name: chat-availability, service: {}, owner: team-chat}}\n\
                 \x20           exp_annotations:\n\
                 \x20             sla: \"99.5%\"\n\
                 \x20             runbook_url: https://runbooks.example.com/chat-availability\n\
                 \x20             escalation: \"chat on-call → page {{{{ the lead }}}}\"\n\
                 \x20             summary: \"SLO chat-availability burns its error budget at more \
                 than {factor}x over {long} and {short}\"\n\
                 \x20             description: \"At this rate {share}% of the 30d budget is gone \
                 within {long} (objective 0.999; at least 100 events in {long}).\"",
                s.name
            )
            .expect("a String takes writes");
        }
    }
    out
}

#[test]
fn page_and_ticket_alerts_follow_the_workbook_over_instances_with_a_low_traffic_guard() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    sliq_tests::run::sliq_ok([
        "rules".as_ref(),
        "--config".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        dir.path().join("rules.yml").as_os_str(),
    ]);

    let (ok, checked) = promtool(dir.path(), &["check", "rules", "rules.yml"]);
    // Per SLO: error ratio and burn rate over 5m, 30m, 1h, 2h, 6h, 1d, 3d and the 30d period
    // (16), events over the 4 long windows, budget remaining, policy state, 4 alerts = 26.
    assert!(
        ok && checked.contains("SUCCESS: 26 rules found"),
        "{checked}"
    );

    let tests = format!(
        "rule_files: [rules.yml]\n\
         evaluation_interval: 10m\n\
         tests:\n\
         \x20 - interval: 1m\n\
         \x20   input_series:\n{input}\
         \x20   alert_rule_test:\n\
         \x20     - eval_time: 73h\n\
         \x20       alertname: SliqErrorBudgetBurn\n\
         \x20       exp_alerts:\n{alerts}\
         \x20   promql_expr_test:\n\
         {values}",
        input = input_series(),
        alerts = expected_alerts(),
        values = expected_values(),
    );
    std::fs::write(dir.path().join("tests.yml"), &tests).unwrap();
    let (ok, tested) = promtool(dir.path(), &["test", "rules", "tests.yml"]);
    assert!(ok, "promtool test rules failed:\n{tested}");
}

/// Recorded values at the end, worked by hand (30d period = all 73 hours of input), to three
/// decimals (promtool compares exactly; rate() leaves float noise such as 19.999999999999980).
fn expected_values() -> String {
    let sample = |expr: &str, service: &str, value: &str| {
        format!(
            "      - expr: 'round({expr}{{service=\"{service}\"}}, 0.001)'\n        eval_time: 73h\n\
             \x20       exp_samples:\n\
             \x20         - labels: '{{sliq_slo_name=\"chat-availability\",service=\"{service}\"}}'\n\
             \x20           value: {value}\n"
        )
    };
    [
        // 20 bad of 1000 a minute over the last hour: 0.02 ÷ 0.001.
        sample("sliq_slo:burn_rate:1h", "fast", "20"),
        // 10 events an hour, both instances summed.
        sample("sliq_slo:events:increase1h", "quiet", "10"),
        // Budget left: fast spent 1200 bad of 4,380,000 (0.27 of the budget) → 0.73 → ok (0);
        // medium 2880 (0.66) → 0.34 → warn (1); within 0.9 → 0.1 → freeze (2); slow 5760
        // (1.32) → exhausted (3).
        sample("sliq_slo:policy_state", "fast", "0"),
        sample("sliq_slo:policy_state", "medium", "1"),
        sample("sliq_slo:policy_state", "within", "2"),
        sample("sliq_slo:policy_state", "slow", "3"),
        sample("sliq_slo:budget_remaining", "within", "0.1"),
    ]
    .concat()
}

#[test]
fn validate_refuses_an_sla_tighter_than_its_slo_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, SPEC.replace("sla: 0.995", "sla: 0.9995")).unwrap();
    let out = std::process::Command::new(sliq_tests::sliq_binary())
        .args(["validate", "--config"])
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // Line 4 holds the SLO's name.
    assert!(
        stderr.contains(&format!(
            "{}:4: slos[0].sla: the SLA 99.95% is tighter than the objective 99.9%",
            spec.display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_rules_of_every_example_spec_pass_promtool_check() {
    let dir = tempfile::tempdir().unwrap();
    let examples = sliq_tests::repo_root().join("pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let spec = entry.unwrap().path();
        if spec.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = dir.path().join("rules.yml");
        sliq_tests::run::sliq_ok([
            "rules".as_ref(),
            "--config".as_ref(),
            spec.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        let (ok, text) = promtool(dir.path(), &["check", "rules", "rules.yml"]);
        // Lint findings (duplicate rules) print FAILED even where promtool exits 0.
        assert!(
            ok && text.contains("SUCCESS") && !text.contains("FAILED"),
            "{}: {text}",
            spec.display()
        );
        checked += 1;
    }
    assert!(checked >= 5, "{checked} example specs");
}
