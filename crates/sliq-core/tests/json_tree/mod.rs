//! A JSON text tree for generated test records: objects may repeat keys (a `serde_json::Value`
//! cannot) and strings may be written entirely as `\u` escapes. Shared by the decoder's
//! property tests.

use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    /// The string and whether to write every character as a `\u` escape.
    Str(String, bool),
    Arr(Vec<Json>),
    Obj(Vec<((String, bool), Json)>),
}

fn render_str(s: &str, escaped: bool, out: &mut String) {
    if !escaped {
        out.push_str(&Value::from(s).to_string());
        return;
    }
    out.push('"');
    for unit in s.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
}

impl Json {
    pub fn render(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s, e) => render_str(s, *e, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, ((k, e), v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render_str(k, *e, out);
                    out.push(':');
                    v.render(out);
                }
                out.push('}');
            }
        }
    }
}

/// Number texts: small, any `i64`/`u64`/`f64`, and edge cases (the limits of `i64`, `u64`, `f64`
/// and of event times). All valid JSON, though `1e400` is more than serde_json holds.
pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..5).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "1e308",
            "-1e308",
            "1.7976931348623157e308",
            "5e-324",
            "-0",
            "0.0",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "4294967295",
            "4294967296",
            "253402300799999",
            "253402300800000",
            "-62135596800000",
            "-62135596800001",
            "1e19",
            "1.5",
            "1e400",
            "-0.0",
            "0.5",
            "1.0",
            "1e3",
            "-9223372036854775809",
            "1700000000000",
        ])
        .prop_map(str::to_owned),
    ]
}
