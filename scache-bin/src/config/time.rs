//! Postfix time values (`conv_time.c`): a decimal number with an optional
//! unit letter; without one, the unit of the parameter's default value.

use std::time::Duration;

use super::lines::is_c_space;
use super::{param_def, Config, ConfigError, DefaultValue};

impl Config {
    /// A time parameter in Postfix syntax: a decimal number with an
    /// optional unit letter `s`, `m`, `h`, `d` or `w`; without a unit the
    /// unit of the parameter's default value applies; only the first
    /// character after the number is looked at. `min` and `max` are seconds
    /// (0: no limit).
    pub fn get_time(&self, name: &str, min: i32, max: i32) -> Result<Duration, ConfigError> {
        let default_unit = self.default_time_unit(name);
        let value = self.lookup_eval(name)?;
        let Some(seconds) = conv_time(&value, default_unit) else {
            return Err(ConfigError::BadTime {
                name: name.to_string(),
                value,
            });
        };
        if min != 0 && seconds < min {
            return Err(ConfigError::TimeRange {
                name: name.to_string(),
                value: i64::from(seconds),
                limit: i64::from(min),
                below: true,
            });
        }
        if max != 0 && seconds > max {
            return Err(ConfigError::TimeRange {
                name: name.to_string(),
                value: i64::from(seconds),
                limit: i64::from(max),
                below: false,
            });
        }
        Ok(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
    }

    /// The first letter of the (expanded) default value: the unit of a time
    /// value written without one. Seconds if the default has none.
    fn default_time_unit(&self, name: &str) -> u8 {
        let default = match param_def(name).map(|p| p.default) {
            Some(DefaultValue::Text(t)) => self.expand(t).unwrap_or_default(),
            _ => String::new(),
        };
        default
            .bytes()
            .find(u8::is_ascii_alphabetic)
            .unwrap_or(b's')
    }
}

/// C `strtol(text, &end, 10)`: returns the value (`None` on overflow,
/// i.e. `ERANGE`) and the end offset; no digits gives `(Some(0), 0)`.
pub(super) fn c_strtol(text: &str) -> Option<(Option<i64>, usize)> {
    let bytes = text.as_bytes();
    let mut i = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut value: Option<i64> = Some(0);
    while let Some(&b) = bytes.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        let digit = i64::from(b - b'0');
        value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        i += 1;
    }
    if i == digits_start {
        return Some((Some(0), 0));
    }
    Some((value, i))
}

/// Postfix 3.7's `conv_time()`: seconds, or `None` for a bad value or unit.
pub fn conv_time(text: &str, default_unit: u8) -> Option<i32> {
    if text.is_empty() {
        return None;
    }
    let (value, end) = c_strtol(text)?;
    let value = i32::try_from(value?).ok()?;
    if value < 0 {
        return None;
    }
    let unit = text.as_bytes().get(end).copied().unwrap_or(default_unit);
    let scale: i32 = match unit {
        b's' => return Some(value),
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86_400,
        b'w' => 604_800,
        _ => return None,
    };
    if value < i32::MAX / scale {
        Some(value * scale)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::test_config;

    #[test]
    fn time_values() {
        let t = |v: &str| {
            let mut c = test_config("");
            c.set("connection_cache_ttl_limit", v);
            c.get_time("connection_cache_ttl_limit", 1, 0)
                .map(|d| d.as_secs())
                .map_err(|e| e.to_string())
        };
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("2sx", Ok(2)),
            ("2", Ok(2)),
            (" 2", Ok(2)),
            ("+2", Ok(2)),
            ("3m", Ok(180)),
            ("1h", Ok(3600)),
            ("1d", Ok(86400)),
            ("5w", Ok(3_024_000)),
            ("$max_idle", Ok(100)),
            ("2147483647", Ok(2_147_483_647)),
            (
                "2 s",
                Err("parameter connection_cache_ttl_limit: bad time value or unit: 2 s"),
            ),
            (
                "",
                Err("parameter connection_cache_ttl_limit: bad time value or unit: "),
            ),
            ("0", Err("invalid connection_cache_ttl_limit: 0 (min 1)")),
            ("s", Err("invalid connection_cache_ttl_limit: 0 (min 1)")),
            (
                "scachex",
                Err("invalid connection_cache_ttl_limit: 0 (min 1)"),
            ),
            (
                "${x?{1}:{0}}",
                Err("invalid connection_cache_ttl_limit: 0 (min 1)"),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                t(value),
                want.map_err(str::to_string),
                "get_time({value:?})"
            );
        }
        // Bad syntax or unit, or out of range for a C int: the message ends
        // with the value.
        for value in ["2x", "-1", "99999999999", "3550000w"] {
            let e = match t(value) {
                Ok(secs) => panic!("get_time({value:?}) = {secs}, want an error"),
                Err(e) => e,
            };
            assert!(
                e.ends_with(&format!("bad time value or unit: {value}")),
                "get_time({value:?}): {e}"
            );
        }
        let mut c = test_config("");
        c.set("max_idle", "5");
        assert_eq!(
            c.get_time("max_idle", 1, 4).unwrap_err().to_string(),
            "invalid max_idle: 5 (max 4)"
        );
    }

    #[test]
    fn default_unit_comes_from_default_value() {
        let cases: &[(&str, u8, Option<i32>)] = &[
            ("12", b'h', Some(12 * 3600)),
            ("12s", b'h', Some(12)),
            ("12", b'x', None),
        ];
        for &(text, unit, want) in cases {
            assert_eq!(
                conv_time(text, unit),
                want,
                "conv_time({text:?}, {:?})",
                char::from(unit)
            );
        }
    }
}
