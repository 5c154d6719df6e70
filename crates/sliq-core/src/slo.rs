//! SLOs and their series: an SLI, an objective, and the dimensions its counters are split by.
//!
//! Each distinct (SLO, dimension values) pair is a series, interned once to a dense [`SeriesId`] so the
//! windows count into plain integers and never hash strings per event after the first sighting.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::event::Event;
use crate::sli::{Outcome, Sli};

/// What an SLO's counters are split by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Service,
    Model,
    Operation,
    /// A key of the event's `labels` (e.g. `tier`, `tenant`).
    Label(String),
}

impl Dimension {
    /// Parses the spec spelling: `service`, `model`, `operation` or `labels.<key>`.
    pub fn parse(s: &str) -> Option<Dimension> {
        match s {
            "service" => Some(Dimension::Service),
            "model" => Some(Dimension::Model),
            "operation" => Some(Dimension::Operation),
            _ => s
                .strip_prefix("labels.")
                .filter(|k| !k.is_empty())
                .map(|k| Dimension::Label(k.to_owned())),
        }
    }

    /// The metric attribute key: `service`, `model`, `operation`, or the label's key.
    pub fn attribute(&self) -> &str {
        match self {
            Dimension::Service => "service",
            Dimension::Model => "model",
            Dimension::Operation => "operation",
            Dimension::Label(k) => k,
        }
    }

    /// The event's value for this dimension; [`UNKNOWN`] when it has none.
    pub fn value<'a>(&self, event: &Event<'a>) -> &'a str {
        let v = match self {
            Dimension::Service => Some(event.service),
            Dimension::Model => event.model,
            Dimension::Operation => Some(event.operation),
            Dimension::Label(k) => event.label(k),
        };
        v.unwrap_or(UNKNOWN)
    }
}

/// The dimension value of events that lack the field.
pub const UNKNOWN: &str = "unknown";

/// One SLO as the core evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub name: String,
    pub sli: Sli,
    /// Target good ratio, in (0, 1).
    pub objective: f64,
    pub dimensions: Vec<Dimension>,
}

/// Dense index of one (SLO, dimension values) series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

/// A series' identity, resolved for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    /// Index into the evaluator's SLO list.
    pub slo: usize,
    /// Dimension values, in the SLO's dimension order.
    pub values: Vec<Box<str>>,
}

/// Evaluates every SLO on each event and interns the series it lands in.
#[derive(Debug)]
pub struct Evaluator {
    slos: Vec<Slo>,
    ids: HashMap<Box<str>, SeriesId>,
    keys: Vec<SeriesKey>,
    scratch: String,
}

/// Separates dimension values inside an interning key. Values may contain it too, so each value is
/// also prefixed with its length, which keeps keys unambiguous.
const KEY_SEPARATOR: char = '\u{1f}';

impl Evaluator {
    pub fn new(slos: Vec<Slo>) -> Self {
        Evaluator {
            slos,
            ids: HashMap::new(),
            keys: Vec::new(),
            scratch: String::new(),
        }
    }

    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// Judges `event` against every SLO, pushing `(series, outcome)` for each SLO that judged it.
    /// Allocates only the first time a series is seen.
    pub fn evaluate(&mut self, event: &Event<'_>, out: &mut Vec<(SeriesId, Outcome)>) {
        for slo_index in 0..self.slos.len() {
            let slo = &self.slos[slo_index];
            let Some(outcome) = slo.sli.evaluate(event) else {
                continue;
            };
            self.scratch.clear();
            // Writing into a String cannot fail.
            let _ = write!(self.scratch, "{slo_index}");
            for d in &slo.dimensions {
                let v = d.value(event);
                let _ = write!(self.scratch, "{KEY_SEPARATOR}{}:{v}", v.len());
            }
            let id = match self.ids.get(self.scratch.as_str()) {
                Some(id) => *id,
                None => {
                    let id = SeriesId(self.keys.len() as u32);
                    let values = slo
                        .dimensions
                        .iter()
                        .map(|d| Box::from(d.value(event)))
                        .collect();
                    self.keys.push(SeriesKey {
                        slo: slo_index,
                        values,
                    });
                    self.ids.insert(Box::from(self.scratch.as_str()), id);
                    id
                }
            };
            out.push((id, outcome));
        }
    }

    /// The identity of a series this evaluator handed out.
    pub fn series(&self, id: SeriesId) -> &SeriesKey {
        &self.keys[id.0 as usize]
    }

    /// The SLO a series belongs to.
    pub fn slo_of(&self, id: SeriesId) -> &Slo {
        &self.slos[self.series(id).slo]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, FieldMap};
    use serde_json::json;

    fn availability(name: &str, dims: &[&str]) -> Slo {
        Slo {
            name: name.into(),
            sli: Sli::Availability {
                exclude_error_types: vec![],
            },
            objective: 0.99,
            dimensions: dims.iter().map(|d| Dimension::parse(d).unwrap()).collect(),
        }
    }

    #[test]
    fn dimensions_parse_and_name_attributes() {
        assert_eq!(
            Dimension::parse("labels.tier"),
            Some(Dimension::Label("tier".into()))
        );
        assert_eq!(Dimension::parse("labels."), None);
        assert_eq!(Dimension::parse("tenant"), None);
        assert_eq!(Dimension::parse("model").unwrap().attribute(), "model");
        assert_eq!(Dimension::Label("tier".into()).attribute(), "tier");
    }

    #[test]
    fn series_are_interned_per_slo_and_values() {
        let mut ev = Evaluator::new(vec![
            availability("a", &["service", "labels.tier"]),
            availability("b", &[]),
        ]);
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let recs = [
            json!({"id": "1", "ts": 0, "service": "chat", "labels": {"tier": "gold"}}),
            json!({"id": "2", "ts": 0, "service": "chat", "labels": {"tier": "gold"}, "status": "error"}),
            json!({"id": "3", "ts": 0, "service": "chat"}),
            // A value holding the separator must not collide with two values.
            json!({"id": "4", "ts": 0, "service": "chat\u{1f}1:x"}),
        ];
        let mut out = Vec::new();
        for r in &recs {
            ev.evaluate(&d.decode(r).unwrap(), &mut out);
        }
        let ids: Vec<u32> = out.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![0, 1, 0, 1, 2, 1, 3, 1]);
        assert_eq!(out[2].1, Outcome::Bad);
        let k = ev.series(SeriesId(2));
        assert_eq!(
            (k.slo, k.values.as_slice()),
            (0, &["chat".into(), "unknown".into()][..])
        );
        assert_eq!(ev.slo_of(SeriesId(1)).name, "b");
    }
}
