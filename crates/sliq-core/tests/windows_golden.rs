//! Golden transcripts for the windows and watermark (Arroyo's practice): each file under `golden/`
//! is a hand-worked script of commands with the output expected after each, as `> ` lines.
//! The test replays the commands and requires the same transcript back, byte for byte
//! (`SLIQ_BLESS=1` rewrites them, for a change of behaviour reviewed in the diff).
//!
//! Commands (times in seconds of event time, series as `<id>:good|bad`):
//! - `config size=60 lateness=30 ooo=5`  (first line)
//! - `event <source> <offset> <t> <series:outcome>...`   prints `> late` when refused
//! - `assign <source>` (assigned, no event yet) · `idle <source>` · `remove <source>`
//! - `close` (close_ready) · `close_all` · `drain <source>`: print one `> window` line per window
//!   handed out
//! - `watermark`: prints `> watermark <t>` or `> watermark none`
//! - `hold <source>`: prints `> hold <offset>` or `> hold none`

use std::fmt::Write as _;
use std::path::Path;

use sliq_core::{Admission, SeriesId, SourceId, Verdict, WindowConfig, WindowCounts, Windows};

fn seconds(s: &str) -> i64 {
    s.parse::<i64>().expect("seconds") * 1000
}

fn show(windows: &[WindowCounts], out: &mut String) {
    for w in windows {
        let counts: Vec<String> = w
            .counts
            .iter()
            .map(|c| format!("{}:{}/{}", c.series.0, c.good, c.bad))
            .collect();
        let kind = if w.closed { "closed" } else { "partial" };
        let _ = writeln!(
            out,
            "> {kind} [{},{}) {}",
            w.start_ms / 1000,
            w.end_ms / 1000,
            counts.join(" ")
        );
    }
}

fn replay(script: &str) -> String {
    let mut out = String::new();
    let mut windows: Option<Windows> = None;
    for line in script.lines() {
        if line.starts_with("> ") {
            continue; // expected output: regenerated below
        }
        out.push_str(line);
        out.push('\n');
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        if words[0] == "config" {
            let get = |k: &str| {
                words[1..]
                    .iter()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .map(seconds)
                    .unwrap_or_else(|| panic!("config needs {k}="))
            };
            windows = Some(Windows::new(WindowConfig {
                size_ms: get("size"),
                allowed_lateness_ms: get("lateness"),
                max_out_of_orderness_ms: get("ooo"),
            }));
            continue;
        }
        let w = windows.as_mut().expect("config comes first");
        let source = || SourceId(words[1].parse().expect("source"));
        match words[0] {
            "event" => {
                let outcomes: Vec<(SeriesId, Verdict)> = words[4..]
                    .iter()
                    .map(|o| {
                        let (id, verdict) = o.split_once(':').expect("series:outcome");
                        let outcome = if verdict == "good" {
                            Verdict::GOOD
                        } else {
                            Verdict::BAD
                        };
                        (SeriesId(id.parse().expect("series id")), outcome)
                    })
                    .collect();
                let offset = words[2].parse().expect("offset");
                if w.add(source(), offset, seconds(words[3]), &outcomes, &[], None)
                    == Admission::Late
                {
                    out.push_str("> late\n");
                }
            }
            "idle" => w.set_idle(source()),
            "assign" => w.add_source(source()),
            "remove" => w.remove_source(source()),
            "close" => show(&w.close_ready(), &mut out),
            "close_all" => show(&w.close_all(), &mut out),
            "drain" => show(&w.drain_source(source()), &mut out),
            "watermark" => match w.watermark() {
                Some(t) => {
                    let _ = writeln!(out, "> watermark {}", t / 1000);
                }
                None => out.push_str("> watermark none\n"),
            },
            "hold" => match w.hold_floor(source()) {
                Some(o) => {
                    let _ = writeln!(out, "> hold {o}");
                }
                None => out.push_str("> hold none\n"),
            },
            other => panic!("unknown command {other:?}"),
        }
    }
    out
}

#[test]
fn golden_window_transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "golden"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "golden files missing in {}",
        dir.display()
    );
    for file in files {
        let expected = std::fs::read_to_string(&file).expect("read golden");
        let actual = replay(&expected);
        if std::env::var_os("SLIQ_BLESS").is_some() {
            // Rewrites the transcripts; review the diff by hand before committing it.
            std::fs::write(&file, &actual).expect("write golden");
            continue;
        }
        assert_eq!(actual, expected, "transcript differs: {}", file.display());
    }
}
