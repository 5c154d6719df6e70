//! The live SLO table of `sliq demo`.

use std::fmt::Write as _;

use sliq_pipeline::SloProgress;

/// Renders the table as text lines.
pub fn render(slos: &[SloProgress], records: u64, dead_lettered: u64, late: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>10} {:>10} {:>12}",
        "SLO", "events", "good", "objective", "budget left"
    );
    for s in slos {
        let ratio = s
            .good_ratio()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.3}%", r * 100.0));
        let budget = s
            .budget_left()
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1}%", b * 100.0));
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>10} {:>9.2}% {:>12}",
            s.name,
            s.events(),
            ratio,
            s.objective * 100.0,
            budget
        );
    }
    let _ = writeln!(
        out,
        "records read: {records}   dead-lettered: {dead_lettered}   late: {late}"
    );
    out
}
