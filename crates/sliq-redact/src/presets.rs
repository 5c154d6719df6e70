//! The named kinds of personal data and secrets a rule can look for, each a regex that finds
//! candidates and, where a regex alone would mistake ordinary numbers for them, a check that
//! confirms each candidate (Luhn for card numbers, an address parse for IPs, whole-token
//! boundaries for anything made of digits).

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;
use serde::Deserialize;

/// A named kind of sensitive text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RedactPreset")]
pub enum Preset {
    Email,
    Phone,
    CreditCard,
    Ip,
    ApiKey,
}

impl Preset {
    /// What replaces a find when masked.
    pub fn marker(self) -> &'static str {
        match self {
            Preset::Email => "[email]",
            Preset::Phone => "[phone]",
            Preset::CreditCard => "[credit_card]",
            Preset::Ip => "[ip]",
            Preset::ApiKey => "[api_key]",
        }
    }

    /// The regex that finds candidates; [`Preset::confirms`] decides which of them count.
    pub fn pattern(self) -> &'static str {
        match self {
            Preset::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
            // International (+ and country code, then 2 to 5 groups), or the North American
            // 3-3-4 shape with separators.
            Preset::Phone => concat!(
                r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}",
                r"|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"
            ),
            // 13 to 19 digits, optionally grouped by spaces or dashes.
            Preset::CreditCard => r"\d(?:[ -]?\d){12,18}",
            Preset::Ip => concat!(
                r"\d{1,3}(?:\.\d{1,3}){3}",
                r"|(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
            ),
            // OpenAI/Anthropic (`sk-`, `sk-proj-`, `sk-ant-`), Stripe (`sk_live_`, `rk_live_`),
            // AWS access key ids, GitHub tokens, Slack tokens, Google API keys, GitLab tokens,
            // JWTs, and bearer credentials as written in an Authorization header.
            Preset::ApiKey => concat!(
                r"\bsk-[A-Za-z0-9_-]{16,}",
                r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
                r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
                r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
                r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
                r"|\bAIza[0-9A-Za-z_-]{35}",
                r"|\bglpat-[A-Za-z0-9_-]{20,}",
                r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                r"|\bBearer\s+[A-Za-z0-9._~+/-]{8,}=*"
            ),
        }
    }

    /// Whether a candidate the regex found at `start..end` of `text` is really of this kind.
    pub(crate) fn confirms(self, text: &str, start: usize, end: usize) -> bool {
        let found = &text[start..end];
        match self {
            Preset::Email | Preset::ApiKey => true,
            Preset::Phone => {
                let digits = found.bytes().filter(u8::is_ascii_digit).count();
                stands_alone(text, start, end) && (9..=15).contains(&digits)
            }
            Preset::CreditCard => stands_alone(text, start, end) && passes_luhn(found),
            Preset::Ip => {
                stands_alone(text, start, end)
                    && (found.parse::<Ipv4Addr>().is_ok() || found.parse::<Ipv6Addr>().is_ok())
            }
        }
    }
}

/// Every preset, in the order ties between overlapping finds are settled (a card number is not
/// also read as a phone number).
pub(crate) const BY_PRIORITY: [Preset; 5] = [
    Preset::ApiKey,
    Preset::Email,
    Preset::CreditCard,
    Preset::Ip,
    Preset::Phone,
];

/// A compiled preset.
#[derive(Debug)]
pub(crate) struct PresetFinder {
    pub(crate) preset: Preset,
    pub(crate) regex: Regex,
}

impl PresetFinder {
    pub(crate) fn new(preset: Preset) -> Self {
        // The preset patterns are constants, compiled by this crate's tests.
        #[allow(clippy::unwrap_used)]
        let regex = Regex::new(preset.pattern()).unwrap();
        PresetFinder { preset, regex }
    }
}

/// A find that is part of a longer word or number (`order 41111111111111110`, `v1.2.3.4.5`) is
/// not one.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let joins = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let digit = |c: char| c.is_ascii_digit();
    !before.is_some_and(joins)
        && !after.is_some_and(joins)
        && !text[..start]
            .strip_suffix('.')
            .is_some_and(|t| t.ends_with(digit))
        && !text[end..]
            .strip_prefix('.')
            .is_some_and(|t| t.starts_with(digit))
}

/// The Luhn checksum every payment card number carries: doubling every second digit from the
/// right, the digit sum is a multiple of 10.
pub(crate) fn passes_luhn(candidate: &str) -> bool {
    let sum: u32 = candidate
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| match (i % 2, d * 2) {
            (0, _) => d,
            (_, doubled) if doubled > 9 => doubled - 9,
            (_, doubled) => doubled,
        })
        .sum();
    sum.is_multiple_of(10)
}
