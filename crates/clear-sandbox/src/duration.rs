//! Parsing of humane durations in the clients file ("90s", "10m", "24h", "30d", "1h30m",
//! or a bare number of seconds).

use std::time::Duration;

/// A duration text that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "failed to parse duration {text:?}: expected seconds or number+unit parts (ms, s, m, h, d, w), e.g. \"90s\", \"1h30m\", \"30d\""
)]
pub struct DurationError {
    pub text: String,
}

/// Parses "1h30m", "10m", "24h", "30d", "2w", "90s", "250ms" or "600" (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = || DurationError {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail());
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total_ms: u64 = 0;
    let mut digits = String::new();
    let mut chars = trimmed.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit_ms = match ch {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return Err(fail()),
        };
        let amount: u64 = digits.parse().map_err(|_| fail())?;
        digits.clear();
        total_ms = amount
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(fail)?;
    }
    if !digits.is_empty() {
        return Err(fail());
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_units_and_bare_seconds_are_understood() {
        let cases = [
            ("600", 600),
            ("90s", 90),
            ("10m", 600),
            ("24h", 86_400),
            ("30d", 2_592_000),
            ("2w", 1_209_600),
            ("1h30m", 5_400),
        ];
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        for (text, seconds) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for text in ["", "m", "ms", "10x", "1.5h", "h10", "10m5", "-5m", "5sm"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}
