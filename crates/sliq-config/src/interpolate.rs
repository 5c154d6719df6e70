//! `${VAR}` and `${VAR:-default}` environment interpolation, done on the text before YAML parsing so
//! a value can come from the environment anywhere in a spec. `$${` writes a literal `${`.
//! Line numbers survive (a substituted value containing a newline is refused), so YAML errors still
//! point at the right line of the file the user wrote.

use std::sync::LazyLock;

use regex::{Captures, Regex};

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    // The pattern is a constant: it compiles or the test suite fails.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}").unwrap()
});

/// A variable that could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub message: String,
}

/// Replaces variables using `lookup` (the process environment in production).
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut first_error = None;
    let out = VARIABLE.replace_all(text, |c: &Captures<'_>| {
        let whole = &c[0];
        if !c[1].is_empty() {
            return whole[1..].to_owned(); // `$${X}` → `${X}`
        }
        let line = text[..c.get(0).map_or(0, |m| m.start())].matches('\n').count() + 1;
        let name = &c[2];
        let value = lookup(name).filter(|v| !v.is_empty());
        let chosen = match (value, c.get(3)) {
            (Some(v), _) => v,
            (None, Some(default)) => default.as_str().to_owned(),
            (None, None) => {
                first_error.get_or_insert(InterpolationError {
                    line,
                    message: format!(
                        "environment variable {name} is not set; set it, or give a default as ${{{name}:-value}}"
                    ),
                });
                return String::new();
            }
        };
        if chosen.contains('\n') {
            first_error.get_or_insert(InterpolationError {
                line,
                message: format!("the value of {name} spans several lines; use a single-line value"),
            });
        }
        chosen
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BROKERS" => Some("k1:9092,k2:9092".into()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_and_defaults() {
        let got = interpolate(
            "a: ${BROKERS}\nb: ${MISSING:-x:1}\nc: ${EMPTY:-d}\ne: ${MISSING:-}",
            env,
        );
        assert_eq!(got.unwrap(), "a: k1:9092,k2:9092\nb: x:1\nc: d\ne: ");
    }

    #[test]
    fn escaped_dollar_is_literal() {
        assert_eq!(interpolate("p: $${BROKERS}", env).unwrap(), "p: ${BROKERS}");
    }

    #[test]
    fn unset_variable_names_line_and_fix() {
        let err = interpolate("a: 1\nb: 2\nc: ${NOPE}", env).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("NOPE is not set"), "{}", err.message);
        assert!(err.message.contains("${NOPE:-value}"), "{}", err.message);
    }

    #[test]
    fn multiline_value_is_refused() {
        assert_eq!(interpolate("\nx: ${MULTI}", env).unwrap_err().line, 2);
    }
}
