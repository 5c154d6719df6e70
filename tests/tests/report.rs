//! `sliq report` against a real run: the numbers in the page (its JSON block and `data-`
//! attributes) equal what `sliq run` exported for the same records, the page needs nothing from
//! the network, and headless Chromium renders a burn-down chart per SLO: the screenshot has a plot
//! area with the budget line drawn in it where each chart is, which a page with a broken chart
//! does not.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sliq_gen::{GenConfig, Generator};
use sliq_tests::chromium::{ChartRegion, Image, chart_regions, screenshot};
use sliq_tests::otlp::{OtlpReceiver, gauge_points, last_values};
use sliq_tests::run::{broker_with_topics, gen_config, sliq_ok, start_sliq, wait_ok, write_spec};

/// The colours the report draws its plot areas and budget lines in (sliq_replay::report).
const PLOT_BACKGROUND: &str = "#eef4fc";
const BUDGET_LINE: &str = "#1a66d9";

/// (slo, dimension attributes) → value, of one instance's last points.
type BySeries = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn by_series(points: &[sliq_tests::otlp::ReceivedPoint], outcome: Option<&str>) -> BySeries {
    last_values(points)
        .into_iter()
        .filter(|((_, a), _)| outcome.is_none_or(|o| a["sliq.slo.outcome"] == o))
        .map(|((_, mut a), v)| {
            let slo = a.remove("sliq.slo.name").unwrap_or_default();
            a.remove("sliq.slo.outcome");
            ((slo, a), v)
        })
        .collect()
}

fn report_data(html: &str) -> Value {
    let start = r#"<script type="application/json" id="sliq-report-data">"#;
    let from = html.find(start).expect("data block") + start.len();
    let to = from
        + html[from..]
            .find("</script>")
            .expect("end of the data block");
    serde_json::from_str(&html[from..to]).expect("the data block is JSON")
}

/// The charts a screenshot of `html` shows.
fn rendered_charts(html: &Path, dir: &Path, name: &str) -> Vec<ChartRegion> {
    let png = dir.join(format!("{name}.png"));
    screenshot(html, &png, 1000, 3000).expect("screenshot");
    let image = Image::read_png(&png).expect("png");
    chart_regions(&image, PLOT_BACKGROUND, BUDGET_LINE)
}

/// Every chart the page should have is there: a plot area the size the report draws (568 × 176
/// CSS pixels) with the budget line across it (a line over the width is well over 400 pixels;
/// the end marker alone is about 50).
fn charts_rendered(regions: &[ChartRegion], expected: usize) -> bool {
    regions.len() == expected
        && regions.iter().all(|r| {
            (r.right - r.left + 1).abs_diff(568) <= 3
                && (r.bottom - r.top + 1).abs_diff(176) <= 3
                && r.line_pixels >= 400
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_the_runs_numbers_and_chromium_draws_its_charts() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let config = GenConfig {
        events_per_second: 20.0,
        ..gen_config(33)
    };
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (dir, spec_path, archive) = write_spec(&broker, "it-report", &endpoint);
    let mut generator = Generator::new(config);
    sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, 12_000, None)
        .await
        .expect("produce");
    wait_ok(
        start_sliq(&spec_path, "it-rep", &["--exit-on-idle", "6s"]).await,
        "run",
    )
    .await;

    let html_path = dir.path().join("report.html");
    sliq_ok([
        "report".as_ref(),
        "--config".as_ref(),
        spec_path.as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
        "--out".as_ref(),
        html_path.as_os_str(),
    ]);
    let html = std::fs::read_to_string(&html_path).expect("report");
    for fetch in ["http://", "https://", "<script src", "<link", "url("] {
        assert!(!html.contains(fetch), "the page would fetch {fetch}");
    }
    let data = report_data(&html);

    // Counters: per series and per SLO, the run's last cumulative values.
    let events = receiver.sum_points("sliq.slo.events");
    let (good, bad) = (
        by_series(&events, Some("good")),
        by_series(&events, Some("bad")),
    );
    let remaining = by_series(
        &gauge_points(&receiver.requests(), "sliq.slo.budget.remaining"),
        None,
    );
    let slos = data["slos"].as_array().expect("slos");
    assert_eq!(slos.len(), 2);
    for slo in slos {
        let name = slo["slo"].as_str().expect("name");
        let objective = slo["objective"].as_f64().expect("objective");
        let (mut slo_good, mut slo_bad) = (0, 0);
        let series = slo["series"].as_array().expect("series");
        assert_eq!(series.len(), good.keys().filter(|(s, _)| s == name).count());
        for s in series {
            let dims: BTreeMap<String, String> =
                serde_json::from_value(s["dimensions"].clone()).expect("dimensions");
            let key = (name.to_owned(), dims);
            let (g, b) = (
                s["good"].as_u64().expect("good"),
                s["bad"].as_u64().expect("bad"),
            );
            assert_eq!((g as f64, b as f64), (good[&key], bad[&key]), "{key:?}");
            let r = s["budget_remaining"].as_f64().expect("remaining");
            assert!(
                (r - remaining[&key]).abs() < 1e-12,
                "{key:?}: {r} vs {}",
                remaining[&key]
            );
            slo_good += g;
            slo_bad += b;
        }
        assert_eq!(slo["good"].as_u64(), Some(slo_good));
        assert_eq!(slo["bad"].as_u64(), Some(slo_bad));
        // The period (30d) holds every record: budget left by the workbook's formula.
        let ratio = slo_bad as f64 / (slo_good + slo_bad) as f64;
        let want = 1.0 - ratio / (1.0 - objective);
        let got = slo["budget_remaining"].as_f64().expect("remaining");
        assert!((got - want).abs() < 1e-12, "{name}: {got} vs {want}");
        let section = format!(
            "data-slo=\"{name}\" data-good=\"{slo_good}\" data-bad=\"{slo_bad}\" \
             data-attainment=\"{}\"",
            slo_good as f64 / (slo_good + slo_bad) as f64
        );
        assert!(html.contains(&section), "{section}");
        assert!(slo["burn_down"].as_array().expect("burn-down").len() > 5);
    }
    let run_records: BTreeMap<String, f64> = last_values(&receiver.sum_points("sliq.records"))
        .into_iter()
        .map(|((_, a), v)| (a["sliq.record.outcome"].clone(), v))
        .collect();
    assert_eq!(
        data["records"]["accepted"].as_f64(),
        Some(run_records["accepted"])
    );

    // Chromium draws both charts; the same page with a chart whose line lost its points does not
    // pass the same check.
    let charts = rendered_charts(&html_path, dir.path(), "report");
    assert!(charts_rendered(&charts, 2), "{charts:?}");
    let broken = dir.path().join("broken.html");
    let first_line = html
        .find("class=\"budget\" points=\"")
        .expect("a budget line")
        + "class=\"budget\" points=\"".len();
    let end = first_line + html[first_line..].find('"').expect("end of points");
    std::fs::write(&broken, format!("{}{}", &html[..first_line], &html[end..])).expect("write");
    let broken_charts = rendered_charts(&broken, dir.path(), "broken");
    assert!(!charts_rendered(&broken_charts, 2), "{broken_charts:?}");
}
