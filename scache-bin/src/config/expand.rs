//! `$name` expansion as Postfix 3.7's `mac_parse.c` and `mac_expand.c` do
//! it: `$name`, `${name}`, `$(name)`, `${name?value}`, `${name:value}`,
//! `${name?{v1}:{v2}}`, relational `${{a} == {b} ? {t} : {f}}` and `$$`.

use std::borrow::Cow;

use super::lines::truncate_bytes;
use super::{Config, ConfigError};

/// Postfix's limit on nested macro expansion (`mac_expand.c`).
const MAX_NESTING: usize = 100;

/// White space around `{}` operands in expansions (Postfix's `CHARS_SPACE`).
fn is_expr_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Config {
    /// Expands `$name` expressions in `text` as Postfix does when a
    /// parameter is read (recursively, undefined names give nothing).
    pub fn expand(&self, text: &str) -> Result<String, ConfigError> {
        let mut out = String::new();
        let mut expander = Expander {
            config: self,
            level: 0,
        };
        expander.parse(text, &mut out).map_err(|e| match e {
            MacroError::Syntax(warning) => ConfigError::Macro { warning },
            MacroError::Conversion(value) => ConfigError::MacroConversion { value },
        })?;
        Ok(out)
    }
}

enum MacroError {
    /// Syntax error; Postfix's warning text.
    Syntax(String),
    /// Relational operand out of range for a C long.
    Conversion(String),
}

/// `"%.20s"`.
fn at_most_20(text: &str) -> &str {
    truncate_bytes(text, 20)
}

struct Expander<'a> {
    config: &'a Config,
    level: usize,
}

impl Expander<'_> {
    /// `mac_parse()`: split into literal text and `$` expressions.
    fn parse(&mut self, value: &str, out: &mut String) -> Result<(), MacroError> {
        let bytes = value.as_bytes();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                let next = bytes[i..]
                    .iter()
                    .position(|&b| b == b'$')
                    .map_or(bytes.len(), |p| i + p);
                literal.push_str(&value[i..next]);
                i = next;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'$') {
                literal.push('$');
                i += 2;
                continue;
            }
            if !literal.is_empty() {
                self.literal(&literal, out)?;
                literal.clear();
            }
            i += 1;
            let expr: &str;
            match bytes.get(i) {
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    let start = i + 1;
                    let mut depth = 1;
                    let mut j = start;
                    loop {
                        let Some(&b) = bytes.get(j) else {
                            return Err(MacroError::Syntax(format!(
                                "truncated macro reference: \"{value}\""
                            )));
                        };
                        if b == open {
                            depth += 1;
                        } else if b == close {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        j += 1;
                    }
                    expr = &value[start..j];
                    i = j + 1;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    expr = &value[start..i];
                }
            }
            if expr.is_empty() {
                return Err(MacroError::Syntax(format!("empty macro name: \"{value}\"")));
            }
            self.expression(expr, out)?;
        }
        if !literal.is_empty() {
            self.literal(&literal, out)?;
        }
        Ok(())
    }

    fn enter(&mut self, text: &str) -> Result<(), MacroError> {
        self.level += 1;
        if self.level > MAX_NESTING + 1 {
            return Err(MacroError::Syntax(format!(
                "unreasonable macro call nesting: \"{text}\""
            )));
        }
        Ok(())
    }

    fn literal(&mut self, text: &str, out: &mut String) -> Result<(), MacroError> {
        self.enter(text)?;
        out.push_str(text);
        self.level -= 1;
        Ok(())
    }

    /// `mac_expand_callback()` for one `$...` expression.
    fn expression(&mut self, buf: &str, out: &mut String) -> Result<(), MacroError> {
        self.enter(buf)?;
        let lookup: Option<String>;
        let mut op: Option<u8> = None;
        let mut rest: &str;

        if let Some(curly) = find_left_curly(buf) {
            let (is_true, after) = self.relational(curly)?;
            lookup = Some(if is_true { "true" } else { "" }.to_string());
            rest = after;
            if let Some(&ch) = rest.as_bytes().first() {
                if ch != b'?' && ch != b':' {
                    return Err(MacroError::Syntax(format!(
                        "\"?\" or \":\" expected at: \"...}}>>>{}\"",
                        at_most_20(rest)
                    )));
                }
                op = Some(ch);
                rest = &rest[1..];
            }
        } else {
            let bytes = buf.as_bytes();
            let mut name_end = bytes.len();
            rest = "";
            for (i, &ch) in bytes.iter().enumerate() {
                if ch == b'?' || ch == b':' {
                    name_end = i;
                    op = Some(ch);
                    rest = &buf[i + 1..];
                    break;
                }
                if !ch.is_ascii_alphanumeric() && ch != b'_' {
                    return Err(MacroError::Syntax(format!(
                        "attribute name syntax error at: \"...{}>>>{}\"",
                        &buf[..i],
                        at_most_20(&buf[i..])
                    )));
                }
            }
            lookup = self.config.raw(&buf[..name_end]).map(Cow::into_owned);
        }

        let defined_non_empty = lookup.as_deref().is_some_and(|v| !v.is_empty());
        match op {
            Some(b'?') => {
                let (if_true, after) = operand(rest)?;
                if defined_non_empty {
                    self.parse(if_true, out)?;
                }
                if !after.is_empty() {
                    let Some(after) = after.strip_prefix(':') else {
                        return Err(MacroError::Syntax(format!(
                            "\":\" expected at: \"...{if_true}}}>>>{}\"",
                            at_most_20(after)
                        )));
                    };
                    self.if_false(after, defined_non_empty, out)?;
                }
            }
            Some(_) => self.if_false(rest, defined_non_empty, out)?,
            None => {
                if let Some(value) = lookup.as_deref().filter(|v| !v.is_empty()) {
                    self.parse(value, out)?;
                }
            }
        }
        self.level -= 1;
        Ok(())
    }

    fn if_false(
        &mut self,
        text: &str,
        defined_non_empty: bool,
        out: &mut String,
    ) -> Result<(), MacroError> {
        let (if_false, after) = operand(text)?;
        if !defined_non_empty {
            self.parse(if_false, out)?;
        }
        if !after.is_empty() {
            return Err(MacroError::Syntax(format!(
                "unexpected input at: \"...{if_false}}}>>>{}\"",
                at_most_20(after)
            )));
        }
        Ok(())
    }

    /// `{left} OP {right}`: evaluates and returns the text after it.
    fn relational<'t>(&mut self, text: &'t str) -> Result<(bool, &'t str), MacroError> {
        let (left, after_left) = extract_curly(text)?;
        let op_len = after_left
            .bytes()
            .take_while(|b| b"<>!=?+-*/~&|%".contains(b))
            .count();
        let op = &after_left[..op_len];
        if !matches!(op, "==" | "!=" | "<" | "<=" | ">=" | ">") {
            return Err(MacroError::Syntax(format!(
                "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \"...{left}}}>>>{}\"",
                at_most_20(after_left)
            )));
        }
        let after_op = &after_left[op_len..];
        let Some(right_text) = find_left_curly(after_op) else {
            return Err(MacroError::Syntax(format!(
                "\"{{expression}}\" expected at: \"...{{{left}}} {op}>>>{}\"",
                at_most_20(after_op)
            )));
        };
        let (right, rest) = extract_curly(right_text)?;
        let mut left_value = String::new();
        self.parse(left, &mut left_value)?;
        let mut right_value = String::new();
        self.parse(right, &mut right_value)?;
        let ordering = if all_digits(&left_value) && all_digits(&right_value) {
            let l: i64 = left_value
                .parse()
                .map_err(|_| MacroError::Conversion(left_value.clone()))?;
            let r: i64 = right_value
                .parse()
                .map_err(|_| MacroError::Conversion(right_value.clone()))?;
            l.cmp(&r)
        } else {
            left_value.as_bytes().cmp(right_value.as_bytes())
        };
        let result = match op {
            "==" => ordering.is_eq(),
            "!=" => ordering.is_ne(),
            "<" => ordering.is_lt(),
            "<=" => ordering.is_le(),
            ">=" => ordering.is_ge(),
            _ => ordering.is_gt(),
        };
        Ok((result, rest))
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Skips white space; returns the text from the `{` if one follows.
fn find_left_curly(text: &str) -> Option<&str> {
    let skip = text.bytes().take_while(|&b| is_expr_space(b)).count();
    let rest = &text[skip..];
    rest.starts_with('{').then_some(rest)
}

/// `text` starts with `{`: returns the balanced payload and the text after
/// the closing `}` and any white space.
fn extract_curly(text: &str) -> Result<(&str, &str), MacroError> {
    let bytes = text.as_bytes();
    let mut depth = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'{' {
            depth += 1;
        } else if b == b'}' {
            depth -= 1;
            if depth == 0 {
                let after = &text[i + 1..];
                let skip = after.bytes().take_while(|&b| is_expr_space(b)).count();
                return Ok((&text[1..i], &after[skip..]));
            }
        }
    }
    Err(MacroError::Syntax(format!(
        "unbalanced {{}} in attribute expression: \"{text}\""
    )))
}

/// A `?`/`:` result operand: `{text}` (then the rest), or all of it.
fn operand(text: &str) -> Result<(&str, &str), MacroError> {
    match find_left_curly(text) {
        Some(curly) => extract_curly(curly),
        None => Ok((text, "")),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::test_config;

    #[test]
    fn expansion_forms() {
        let c = test_config("a = A\nempty =\nnested = <$a>\nrec = [$nested]\nd = $$a\n");
        let cases: &[(&str, &str)] = &[
            ("$a ${a} $(a)", "A A A"),
            ("x$undefined.y", "x.y"),
            ("$rec", "[<A>]"),
            ("$d", "$a"),
            ("$$$a", "$A"),
            ("${a?yes}|${empty?yes}|${nope?yes}", "yes||"),
            ("${a:no}|${empty:no}|${nope:no}", "|no|no"),
            ("${a?{1}:{2}}${empty?{1}:{2}}", "12"),
            ("${a?{ $a }}", " A "),
            ("${a? {1} }x${nope: {1} }", "1x1"),
            ("${a?{1}:2}${nope?{1}:2}", "12"),
            ("1${a?x}:y", "1x:y"),
            ("${mail_owner?1}:{2}}x", "1:{2}}x"),
            ("${a?$$}", "$"),
            ("$a.b-c", "A.b-c"),
            ("$5", ""),
        ];
        for (text, want) in cases {
            assert_eq!(c.expand(text).as_deref(), Ok(*want), "expand({text:?})");
        }
    }

    #[test]
    fn relational_expressions() {
        let c = test_config("owner = postfix\n");
        let cases: &[(&str, &str)] = &[
            ("${{1} < {2}?{3}:{4}}", "3"),
            ("${{10} < {9}?{3}:{4}}", "4"),
            ("${{10} == {010}?{3}:{4}}", "3"),
            ("${{a}!={b}}x", "truex"),
            ("${{a}=={b}}x", "x"),
            ("${ {a} == {a} ? {7} : {8} }", "7"),
            ("${{ 9 } == {9}?{3}:{4}}", "4"),
            ("${{-1} < {1}?{3}:{4}}", "3"),
            ("${{9} <= {a}?{3}:{4}}", "3"),
            ("${{b} > {a}}", "true"),
            ("${{1}>={1}}", "true"),
            ("${{$owner}=={postfix}}", "true"),
        ];
        for (text, want) in cases {
            assert_eq!(c.expand(text).as_deref(), Ok(*want), "expand({text:?})");
        }
        let e = c.expand("${{99999999999999999999} == {1}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mac_exp_eval: bad conversion: 99999999999999999999"
        );
    }

    #[test]
    fn expansion_errors_have_postfix_warnings() {
        let c = test_config("a = $b\nb = $a\n");
        let cases: &[(&str, &str)] = &[
            ("$", "empty macro name: \"$\""),
            ("x$", "empty macro name: \"x$\""),
            ("${}", "empty macro name: \"${}\""),
            ("${x", "truncated macro reference: \"${x\""),
            ("$a", "unreasonable macro call nesting: \"b\""),
            ("${a b}", "attribute name syntax error at: \"...a>>> b\""),
            ("$(a{b)x", "attribute name syntax error at: \"...a>>>{b\""),
            ("${a(b}x", "attribute name syntax error at: \"...a>>>(b\""),
            ("${{a}==}", "\"{expression}\" expected at: \"...{a} ==>>>\""),
            ("${{1}=~{1}}", "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \"...1}>>>=~{1}\""),
            ("${mail_owner?{1}  junk}", "\":\" expected at: \"...1}>>>junk\""),
            ("${x:{1} junk}", "unexpected input at: \"...1}>>>junk\""),
            ("${x?{1", "truncated macro reference: \"${x?{1\""),
            ("${{a} == {b}junk}", "\"?\" or \":\" expected at: \"...}>>>junk\""),
            ("${{a} == {b}", "truncated macro reference: \"${{a} == {b}\""),
            ("$({a == x)", "unbalanced {} in attribute expression: \"{a == x\""),
            ("$({a} == x)", "\"{expression}\" expected at: \"...{a} ==>>> x\""),
            ("${a ? {1} : {2} }", "attribute name syntax error at: \"...a>>> ? {1} : {2} \""),
        ];
        for (text, want) in cases {
            let e = match c.expand(text) {
                Ok(value) => panic!("expand({text:?}) = {value:?}, want an error"),
                Err(e) => e,
            };
            assert_eq!(
                e.to_string(),
                "dictionary mail_dict: macro processing error",
                "expand({text:?})"
            );
            assert_eq!(e.warning(), Some(*want), "expand({text:?})");
        }
    }

    #[test]
    fn deep_but_finite_recursion_is_fine() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("p{i} = $p{}\n", i + 1));
        }
        text.push_str("p50 = end\n");
        let c = test_config(&text);
        assert_eq!(c.expand("$p0").as_deref(), Ok("end"));
    }
}
