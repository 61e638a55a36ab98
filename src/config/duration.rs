//! Durations as config.md allows them: a bare number of seconds (`advert_int: 1`, keepalived
//! style) or a string with a unit (`"500ms"`, `"2s"`, `"1m"`, `"1h"`).

use serde::Deserialize;
use std::time::Duration;

/// A duration as written in the file; turned into a `Duration` by [`DurationValue::parse`],
/// which explains what is allowed when the text is wrong.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Int(i64),
    Float(f64),
    Text(String),
}

pub const DURATION_HELP: &str =
    "a number of seconds or a string with a unit: \"500ms\", \"2s\", \"1m\", \"1h\"";

impl DurationValue {
    pub fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
            DurationValue::Int(n) => Err(format!("{n} is negative; expected {DURATION_HELP}")),
            DurationValue::Float(f) if f.is_finite() && *f >= 0.0 && *f < 1e9 => {
                Ok(Duration::from_secs_f64(*f))
            }
            DurationValue::Float(f) => Err(format!(
                "{f} is not a valid duration; expected {DURATION_HELP}"
            )),
            DurationValue::Text(s) => parse_text(s)
                .ok_or_else(|| format!("\"{s}\" is not a duration; expected {DURATION_HELP}")),
        }
    }
}

fn parse_text(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "us" => 0.000_001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        // For long ones such as `hsts: 1y`.
        "w" => 7.0 * 86400.0,
        "y" => 365.0 * 86400.0,
        _ => return None,
    };
    let secs = value * scale;
    (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_keepalived_numbers_and_haproxy_units() {
        let ok = |v: DurationValue| v.parse().expect("valid");
        assert_eq!(ok(DurationValue::Int(2)), Duration::from_secs(2));
        assert_eq!(ok(DurationValue::Float(0.5)), Duration::from_millis(500));
        assert_eq!(
            ok(DurationValue::Text("500ms".into())),
            Duration::from_millis(500)
        );
        assert_eq!(ok(DurationValue::Text("2s".into())), Duration::from_secs(2));
        assert_eq!(
            ok(DurationValue::Text("1m".into())),
            Duration::from_secs(60)
        );
        assert_eq!(ok(DurationValue::Text("3".into())), Duration::from_secs(3));
    }

    #[test]
    fn rejects_nonsense_with_the_allowed_forms() {
        for bad in ["", "fast", "2 weeks", "ms", "1.2.3s"] {
            let e = DurationValue::Text(bad.into()).parse().unwrap_err();
            assert!(e.contains("\"500ms\""), "{e}");
        }
        assert!(DurationValue::Int(-1).parse().is_err());
    }
}
