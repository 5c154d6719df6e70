//! Values that must never be shown: passwords, tokens, keys. They print as `<redacted>` in every
//! `Debug` form (so a spec dumped in an error or a log carries none), and the only way to the text
//! is `expose`, called where the value is handed to the library that needs it.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

/// A secret from the spec (usually `${VAR}` from the environment).
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The text itself, for the client library that needs it; never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_forms_hide_the_value() {
        let secret: Secret = serde_yaml_ng::from_str("hunter2").unwrap();
        assert_eq!(secret.expose(), "hunter2");
        let shown = format!("{secret:?} {:?} {:#?}", Some(&secret), vec![secret.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
