//! `main.cf` text: logical lines (Postfix's `readllines()`), `name = value`
//! pairs (`split_nameval()`) and lists (`CHARS_COMMA_SP`).

use std::fmt;

/// White space as C's `isspace()` in the C locale.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Why a `name = value` text could not be split (Postfix's
/// `split_nameval()` diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameValueError {
    /// Nothing before the `=` (or an empty text).
    MissingName,
    /// The name is not followed by `=` (after optional white space).
    MissingEquals,
}

impl fmt::Display for NameValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameValueError::MissingName => "missing attribute name",
            NameValueError::MissingEquals => "missing '=' after attribute name",
        })
    }
}

impl std::error::Error for NameValueError {}

/// Splits `name = value` like Postfix's `split_nameval()`: leading white
/// space skipped, the name runs up to white space or `=`, white space around
/// `=` and at the end of the value is dropped. The value may be empty.
pub fn split_nameval(text: &str) -> Result<(&str, &str), NameValueError> {
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    if start == bytes.len() || bytes[start] == b'=' {
        return Err(NameValueError::MissingName);
    }
    let name_end = start
        + bytes[start..]
            .iter()
            .position(|&b| is_c_space(b) || b == b'=')
            .unwrap_or(bytes.len() - start);
    let eq = name_end
        + bytes[name_end..]
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(bytes.len() - name_end);
    if bytes.get(eq) != Some(&b'=') {
        return Err(NameValueError::MissingEquals);
    }
    let value_start = eq
        + 1
        + bytes[eq + 1..]
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(bytes.len() - eq - 1);
    let value_end = bytes[value_start..]
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(value_start, |i| value_start + i + 1);
    Ok((&text[start..name_end], &text[value_start..value_end]))
}

/// Splits a list on Postfix's `CHARS_COMMA_SP` (`, \t\r\n`).
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\t', '\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `main.cf` text into logical lines, each with the number of its
/// first physical line, as Postfix's `readllines()` does.
pub(super) fn logical_lines(
    path: &str,
    text: &str,
    warnings: &mut Vec<String>,
) -> Vec<(usize, String)> {
    let mut result: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut orphan: Option<(usize, String)> = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let starts_blank = line.len() != trimmed.len();
        if starts_blank {
            if let Some((_, text)) = current.as_mut() {
                text.push_str(line);
            } else if let Some((_, text)) = orphan.as_mut() {
                text.push_str(line);
            } else {
                orphan = Some((number, line.to_string()));
            }
            continue;
        }
        if let Some((_, text)) = orphan.take() {
            warnings.push(orphan_warning(path, &text));
        }
        if let Some(done) = current.take() {
            result.push(done);
        }
        current = Some((number, line.to_string()));
    }
    if let Some((_, text)) = orphan.take() {
        warnings.push(orphan_warning(path, &text));
    }
    if let Some(done) = current.take() {
        result.push(done);
    }
    result
}

fn orphan_warning(path: &str, text: &str) -> String {
    let shown = truncate_bytes(text, 30);
    let more = if text.len() > 30 { "..." } else { "" };
    format!("{path}: logical line must not start with whitespace: \"{shown}{more}\"")
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn split_nameval_like_postfix() {
        type Want = Result<(&'static str, &'static str), NameValueError>;
        let cases: &[(&str, Want)] = &[
            ("a=b", Ok(("a", "b"))),
            ("  a  =  b c  ", Ok(("a", "b c"))),
            ("a =", Ok(("a", ""))),
            ("a= \r", Ok(("a", ""))),
            ("a==b", Ok(("a", "=b"))),
            ("", Err(NameValueError::MissingName)),
            ("  =x", Err(NameValueError::MissingName)),
            ("a b=c", Err(NameValueError::MissingEquals)),
            ("abc", Err(NameValueError::MissingEquals)),
        ];
        for (text, want) in cases {
            assert_eq!(split_nameval(text), *want, "split_nameval({text:?})");
        }
    }

    #[test]
    fn main_cf_logical_lines() {
        let mut c = Config::new(Path::new("/x"));
        c.parse_main_cf(
            "/x/main.cf",
            "  orphan = 1\n# comment\n\nmax_use = 1\n  0\n#c\n\t0\r\nfoo=bar # not a comment\nmax_idle = 5\nmax_idle = 5\nmax_idle = 7\n",
        )
        .unwrap();
        let raw: &[(&str, Option<&str>)] = &[
            ("max_use", Some("1  0\t0")),
            ("foo", Some("bar # not a comment")),
            ("max_idle", Some("7")),
            ("orphan", None),
        ];
        for (name, want) in raw {
            assert_eq!(c.raw(name).as_deref(), *want, "raw({name:?})");
        }
        assert_eq!(
            c.take_warnings(),
            vec![
                "/x/main.cf: logical line must not start with whitespace: \"  orphan = 1\""
                    .to_string(),
                "/x/main.cf, line 11: overriding earlier entry: max_idle=5".to_string(),
            ]
        );
        assert!(c.take_warnings().is_empty());
    }

    #[test]
    fn main_cf_syntax_error_names_first_line() {
        let mut c = Config::new(Path::new("/x"));
        let e = c
            .parse_main_cf(
                "/tmp/pfx3/main.cf",
                "max_idle = 5\nmax_idle = 7\nfoo\n  bar\n",
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/tmp/pfx3/main.cf, line 3: missing '=' after attribute name: \"foo  bar\""
        );
    }

    #[test]
    fn long_orphan_warning_is_cut() {
        let mut c = Config::new(Path::new("/x"));
        c.parse_main_cf("/m", "   0123456789012345678901234567890123\n")
            .unwrap();
        assert_eq!(
            c.take_warnings(),
            vec!["/m: logical line must not start with whitespace: \"   012345678901234567890123456...\"".to_string()]
        );
    }
}
