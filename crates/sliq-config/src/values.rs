//! The values a spec writes as one scalar and that can be wrong on their own: durations,
//! objectives, JSON Pointers, dimensions. Each refuses a bad value while deserializing, inside the
//! YAML parser's call, so the error points at the key and line. A leaf: imports nothing of the
//! crate.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

use sliq_core::Dimension;

/// A duration written the human way: `500ms`, `30s`, `1m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Written back the way the spec takes it (`1h 30m`, `7d`, `500ms`), exactly: no unit is rounded
/// away, so a message shows the value the user wrote.
impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (total_ms / 86_400_000, "d"),
            (total_ms / 3_600_000 % 24, "h"),
            (total_ms / 60_000 % 60, "m"),
            (total_ms / 1000 % 60, "s"),
            (total_ms % 1000, "ms"),
        ];
        let mut first = true;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{n}{unit}")?;
            first = false;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a duration such as 30s", |s| {
            humantime::parse_duration(s).map(Span).map_err(|e| {
                format!("{s:?} is not a duration ({e}); write e.g. 500ms, 30s, 1m, 2h")
            })
        })
    }
}

/// As [`Display`](std::fmt::Display) writes it, which reads back as the same span: the schema
/// shows defaults this way.
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What `humantime::parse_duration` accepts, other than its special case `0`: numbers (spaces may
/// sit inside and after them) each followed by one of its units, spelled any of its ways, with or
/// without spaces between the parts; a fraction (`1.5h`) on any unit but nanoseconds. (A fraction
/// that is no whole number of nanoseconds, such as `0.0001us`, passes the pattern only.)
pub(crate) const DURATION_PARTS_PATTERN: &str = concat!(
    r"^\s*(?:[0-9][0-9\s]*(?:(?:nanos|nsec|ns)|(?:\.\s*[0-9][0-9\s]*)?",
    r"(?:usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s",
    r"|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d",
    r"|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y))\s*)+$"
);

impl JsonSchema for Span {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: numbers with units, e.g. 500ms, 30s, 5m, 1h 30m, 7d \
                (units ns, us, ms, s, m, h, d, w, M for months of 30.44 days, y), or 0.",
            "anyOf": [
                { "type": "string", "pattern": DURATION_PARTS_PATTERN },
                { "enum": ["0", 0] }
            ]
        })
    }
}

/// Deserializes a string through `parse` inside the deserializer's own call, so that the YAML
/// parser attributes a refusal to the exact key and line (an error raised after deserializing a
/// `String` would be reported at the enclosing map instead).
pub(crate) fn parse_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> serde::de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.parse)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(Visitor { expecting, parse })
}

/// A target good ratio strictly between 0 and 1 (e.g. 0.995), or a percentage string ("99.5%").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective(pub f64);

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Objective;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a ratio such as 0.995 or a percentage such as \"99.5%\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Objective, E> {
                if v > 0.0 && v < 1.0 {
                    Ok(Objective(v))
                } else {
                    Err(E::custom(format!(
                        "objective {v} is outside (0, 1); write a ratio such as 0.995 (99.5%)"
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Objective, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Objective, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Objective, E> {
                let percent = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok())
                    .ok_or_else(|| {
                        E::custom(format!(
                            "{s:?} is not an objective; write 0.995 or \"99.5%\""
                        ))
                    })?;
                self.visit_f64(percent / 100.0)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A percentage strictly between 0% and 100% as Rust reads a number (a plain decimal; the
/// exponent forms Rust also reads are left out), spaces allowed around the `%`.
const PERCENT_PATTERN: &str =
    r"^\s*\+?(?:0*[1-9][0-9]?(?:\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*)\s*%\s*$";

impl JsonSchema for Objective {
    fn schema_name() -> Cow<'static, str> {
        "Objective".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The share of good events to aim for, strictly between 0 and 1: \
                0.995, or as a percentage, \"99.5%\".",
            "anyOf": [
                { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                { "type": "string", "pattern": PERCENT_PATTERN }
            ]
        })
    }
}

/// A JSON Pointer (RFC 6901), e.g. `/response/text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(pub String);

impl<'de> Deserialize<'de> for JsonPointer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a JSON Pointer such as /meta/latency_ms", |s| {
            if s.starts_with('/') {
                Ok(JsonPointer(s.to_owned()))
            } else {
                Err(format!(
                    "{s:?} is not a JSON Pointer; it starts with '/', e.g. \"/meta/latency_ms\""
                ))
            }
        })
    }
}

impl JsonSchema for JsonPointer {
    fn schema_name() -> Cow<'static, str> {
        "JsonPointer".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JSON Pointer into the record (RFC 6901), starting with /, e.g. \
                /meta/latency_ms.",
            "type": "string",
            "pattern": "^/"
        })
    }
}

/// A dimension: `service`, `model`, `operation` or `labels.<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionSpec(pub Dimension);

impl<'de> Deserialize<'de> for DimensionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a dimension", |s| {
            Dimension::parse(s).map(DimensionSpec).ok_or_else(|| {
                format!("{s:?} is not a dimension; use service, model, operation or labels.<key>")
            })
        })
    }
}

impl JsonSchema for DimensionSpec {
    fn schema_name() -> Cow<'static, str> {
        "Dimension".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What series are split by: service, model, operation, or a label \
                of the record as labels.<key>.",
            "anyOf": [
                { "type": "string", "enum": ["service", "model", "operation"] },
                { "type": "string", "pattern": "^labels\\..+" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's duration pattern accepts exactly what the parser does, on every combination of
    /// a few numbers, every unit spelling (and near misses) and separators, in one to three parts.
    #[test]
    fn the_duration_pattern_accepts_what_humantime_parses() {
        let pattern = regex::Regex::new(DURATION_PARTS_PATTERN).unwrap();
        let numbers = [
            "0", "1", "30", "007", "1 0", "1.5", "2.25", "0.125", "2.", ".5",
        ];
        let units = [
            "nanos", "nsec", "ns", "usec", "us", "µs", "millis", "msec", "ms", "seconds", "second",
            "secs", "sec", "s", "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs",
            "hr", "h", "days", "day", "d", "weeks", "week", "wks", "wk", "w", "months", "month",
            "M", "years", "year", "yrs", "yr", "y", "", "H", "S", "Ms", "sex", "mn", "dd", "hs",
        ];
        let parts: Vec<String> = numbers
            .iter()
            .flat_map(|n| {
                units
                    .iter()
                    .flat_map(move |u| [format!("{n}{u}"), format!("{n} {u}")])
            })
            .collect();
        let (mut checked, mut inexact) = (0, 0);
        let mut check = |text: &str| {
            let parsed = match humantime::parse_duration(text) {
                // A fraction that is no whole number of nanoseconds (said where the pattern is).
                Err(humantime::DurationError::NumberOverflow) => {
                    inexact += 1;
                    return;
                }
                parsed => parsed.is_ok() && text != "0",
            };
            assert_eq!(pattern.is_match(text), parsed, "{text:?}");
            checked += 1;
        };
        for a in &parts {
            check(a);
            for b in parts.iter().step_by(7) {
                check(&format!("{a}{b}"));
                check(&format!("{a} {b}"));
            }
        }
        for text in [
            "", " ", "1h,30m", "1h-30m", "h", "1h 30", "-1s", "+1s", "1e3ms", "1h\n",
        ] {
            check(text);
        }
        assert!(
            checked > 100_000 && inexact < checked / 10,
            "{checked} {inexact}"
        );
    }

    /// The percentage pattern accepts exactly the texts the `Objective` parser takes, among plain
    /// decimals around both ends of (0%, 100%).
    #[test]
    fn the_percentage_pattern_accepts_what_the_objective_parser_takes() {
        let pattern = regex::Regex::new(PERCENT_PATTERN).unwrap();
        let numbers = [
            "0", "00", "0.0", ".0", "0.", "0.001", ".5", "5.", "05", "1", "9.99", "50", "99",
            "99.5", "99.999", "100", "100.0", "100.5", "101", "150", "-5", "+5", "5 5", "", ".",
            "abc",
        ];
        for n in numbers {
            for text in [
                format!("{n}%"),
                format!(" {n} % "),
                n.to_owned(),
                format!("{n}%%"),
            ] {
                let parsed = serde_yaml_ng::from_str::<Objective>(&format!("{text:?}")).is_ok();
                assert_eq!(pattern.is_match(&text), parsed, "{text:?}");
            }
        }
    }
}
