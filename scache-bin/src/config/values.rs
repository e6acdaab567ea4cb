//! Typed reads of parameters: strings (with length limits), booleans,
//! integers and lists, checked as Postfix checks them. Time values are in
//! `time.rs`.

use super::time::c_strtol;
use super::{split_list, Config, ConfigError};

impl Config {
    /// The expanded value of a string parameter.
    pub fn get_str(&self, name: &str) -> Result<String, ConfigError> {
        self.lookup_eval(name)
    }

    /// The expanded value of a string parameter whose length (in bytes) must
    /// be at least `min` and at most `max` (0: no limit), as Postfix checks.
    pub fn get_str_checked(
        &self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<String, ConfigError> {
        let value = self.lookup_eval(name)?;
        if min != 0 && value.len() < min {
            return Err(ConfigError::StringLength {
                name: name.to_string(),
                value,
                limit: min,
                below: true,
            });
        }
        if max != 0 && value.len() > max {
            return Err(ConfigError::StringLength {
                name: name.to_string(),
                value,
                limit: max,
                below: false,
            });
        }
        Ok(value)
    }

    /// A boolean parameter: `yes` or `no`, any case.
    pub fn get_bool(&self, name: &str) -> Result<bool, ConfigError> {
        let value = self.lookup_eval(name)?;
        if value.eq_ignore_ascii_case("yes") {
            Ok(true)
        } else if value.eq_ignore_ascii_case("no") {
            Ok(false)
        } else {
            Err(ConfigError::BadBool {
                name: name.to_string(),
                value,
            })
        }
    }

    /// An integer parameter (a C `int`, parsed like `strtol`: optional
    /// leading white space and sign, then digits, nothing after), checked
    /// against `min` and `max` where 0 means "no limit" as in Postfix.
    pub fn get_int(&self, name: &str, min: i32, max: i32) -> Result<i32, ConfigError> {
        let value = self.lookup_eval(name)?;
        let parsed = match c_strtol(&value) {
            Some((Some(n), end)) if end == value.len() && !value.is_empty() => {
                i32::try_from(n).ok()
            }
            _ => None,
        };
        let Some(n) = parsed else {
            return Err(ConfigError::BadNumber {
                name: name.to_string(),
                value,
            });
        };
        if min != 0 && n < min {
            return Err(ConfigError::IntRange {
                name: name.to_string(),
                value: i64::from(n),
                limit: i64::from(min),
                below: true,
            });
        }
        if max != 0 && n > max {
            return Err(ConfigError::IntRange {
                name: name.to_string(),
                value: i64::from(n),
                limit: i64::from(max),
                below: false,
            });
        }
        Ok(n)
    }

    /// A list parameter split on commas and white space.
    pub fn get_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        Ok(split_list(&self.lookup_eval(name)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::test_config;

    #[test]
    fn int_values() {
        let i = |v: &str| {
            let mut c = test_config("");
            c.set("max_use", v);
            c.get_int("max_use", 1, 0).map_err(|e| e.to_string())
        };
        let cases: &[(&str, Result<i32, &str>)] = &[
            ("5", Ok(5)),
            (" 5", Ok(5)),
            ("+5", Ok(5)),
            ("${nosuch:7}", Ok(7)),
            ("abc", Err("bad numerical configuration: max_use = abc")),
            ("5x", Err("bad numerical configuration: max_use = 5x")),
            ("", Err("bad numerical configuration: max_use = ")),
            (
                "2147483648",
                Err("bad numerical configuration: max_use = 2147483648"),
            ),
            ("0", Err("invalid max_use parameter value 0 < 1")),
            ("-5", Err("invalid max_use parameter value -5 < 1")),
        ];
        for (value, want) in cases {
            assert_eq!(i(value), want.map_err(str::to_string), "get_int({value:?})");
        }
        let mut c = test_config("");
        c.set("max_use", "9");
        assert_eq!(
            c.get_int("max_use", 1, 8).unwrap_err().to_string(),
            "invalid max_use parameter value 9 > 8"
        );
    }

    #[test]
    fn bool_and_string_values() {
        let mut c = test_config("");
        let bools: &[(&str, Result<bool, &str>)] = &[
            ("yes", Ok(true)),
            ("YES", Ok(true)),
            ("No", Ok(false)),
            (
                "true",
                Err("bad boolean configuration: scache_dead_connection_eviction = true"),
            ),
        ];
        for (value, want) in bools {
            c.set("scache_dead_connection_eviction", value);
            assert_eq!(
                c.get_bool("scache_dead_connection_eviction")
                    .map_err(|e| e.to_string()),
                want.map_err(str::to_string),
                "get_bool({value:?})"
            );
        }
        let lengths: &[(&str, usize, usize, &str)] = &[
            ("", 1, 0, "bad string length 0 < 1: syslog_name = "),
            (
                "abcdef",
                1,
                3,
                "bad string length 6 > 3: syslog_name = abcdef",
            ),
        ];
        for &(value, min, max, want) in lengths {
            c.set("syslog_name", value);
            assert_eq!(
                c.get_str_checked("syslog_name", min, max)
                    .map_err(|e| e.to_string()),
                Err(want.to_string()),
                "get_str_checked({value:?}, {min}, {max})"
            );
        }
        assert!(matches!(
            c.get_str("no_such_parameter"),
            Err(ConfigError::Unknown { .. })
        ));
    }
}
