//! Reading typed values out of statements, recording a diagnostic for each bad one.

use crate::diag::{Report, Span};
use crate::tree::Statement;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Collects diagnostics while statements are turned into typed values.
pub struct Ctx<'r> {
    /// Where problems go.
    pub report: &'r mut Report,
    /// Whether a missing argument is fatal: most of keepalived's handlers read it without
    /// checking (`strvec_slot`), and keepalived exits ("Configuration line starting `X` is
    /// missing a parameter"); [`Ctx::lenient_missing`] marks the handlers that check.
    pub missing_fatal: bool,
    /// The first unknown keyword met with a block (the statement's address): keepalived does
    /// not skip such a block (see [`crate::tree::drop_open_brace`]).
    pub unknown_block: Option<usize>,
}

impl<'r> Ctx<'r> {
    /// A context recording into `report`, missing arguments fatal.
    pub fn new(report: &'r mut Report) -> Self {
        Ctx {
            report,
            missing_fatal: true,
            unknown_block: None,
        }
    }

    /// Runs `f` with missing arguments reported as (non-fatal) errors, for the keywords whose
    /// keepalived handler checks for its parameter.
    pub fn lenient_missing<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.missing_fatal, false);
        let out = f(self);
        self.missing_fatal = saved;
        out
    }

    /// Records that `st` lacks a parameter: fatal unless inside [`Ctx::lenient_missing`].
    fn missing(&mut self, st: &Statement, what: &str) {
        let message = format!("{}: expected {what}", st.keyword);
        if self.missing_fatal {
            self.fatal(&st.span, message);
        } else {
            self.error(&st.span, message);
        }
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        self.report.error(Some(span), message);
    }

    /// Records an error that stops keepalived from starting at `span`.
    pub fn fatal(&mut self, span: &Span, message: impl Into<String>) {
        self.report.fatal(Some(span), message);
    }

    /// Records a warning at `span`.
    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        self.report.warn(span, message);
    }

    /// A keyword the block does not know: an error for `keepalived -t`, skipped at run time.
    /// With a block it is not skipped whole: keepalived ignores its `{`, reads what is inside
    /// at this level and takes its `}` as the end of this block; the first such statement is
    /// recorded so that the file is read again that way.
    pub fn unknown(&mut self, st: &Statement, block: &str) {
        self.error(
            &st.span,
            format!("unknown keyword '{}' in {block}", st.keyword),
        );
        if st.block.is_some() && self.unknown_block.is_none() {
            self.unknown_block = Some(std::ptr::from_ref(st) as usize);
        }
    }

    /// Warns that a known keepalived keyword has no effect in rvs.
    pub fn ignored(&mut self, st: &Statement) {
        self.warn(
            &st.span,
            format!("{}: accepted but not used by rvs", st.keyword),
        );
    }

    /// The statement's block, or an error if it has none.
    pub fn block<'s>(&mut self, st: &'s Statement) -> Option<&'s [Statement]> {
        match &st.block {
            Some(b) => Some(b),
            None => {
                self.error(&st.span, format!("{}: expected a '{{' block", st.keyword));
                None
            }
        }
    }

    /// Errors if a leaf keyword was given a block.
    pub fn no_block(&mut self, st: &Statement) -> bool {
        if st.block.is_some() {
            self.error(&st.span, format!("{}: unexpected '{{' block", st.keyword));
            false
        } else {
            true
        }
    }

    /// Argument `idx`, or an error saying `what` was expected (fatal: see [`Ctx::missing_fatal`]).
    pub fn arg<'s>(&mut self, st: &'s Statement, idx: usize, what: &str) -> Option<&'s str> {
        match st.args.get(idx) {
            Some(a) => Some(a),
            None => {
                self.missing(st, what);
                None
            }
        }
    }

    /// All arguments joined by spaces, or an error if there are none.
    pub fn text(&mut self, st: &Statement, what: &str) -> Option<String> {
        if st.args.is_empty() {
            self.missing(st, what);
            None
        } else {
            Some(st.args.join(" "))
        }
    }

    /// Argument `idx` read by `parse`; a missing argument, or one `parse` refuses, is an error
    /// saying `what` was expected.
    fn parsed<'s, T>(
        &mut self,
        st: &'s Statement,
        idx: usize,
        what: &str,
        parse: impl FnOnce(&'s str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.arg(st, idx, what)?;
        let value = parse(raw);
        if value.is_none() {
            self.error(
                &st.span,
                format!("{}: expected {what}, got '{raw}'", st.keyword),
            );
        }
        value
    }

    /// An integer of type `T` in `min..=max` from argument `idx`.
    pub fn int_as<T>(&mut self, st: &Statement, idx: usize, min: T, max: T) -> Option<T>
    where
        T: FromStr + PartialOrd + fmt::Display,
    {
        let what = format!("a number {min}-{max}");
        self.parsed(st, idx, &what, |raw| {
            skip_c_space(raw)
                .parse::<T>()
                .ok()
                .filter(|v| *v >= min && *v <= max)
        })
    }

    /// A `u32` in `min..=max` from argument `idx`.
    pub fn u32(&mut self, st: &Statement, idx: usize, min: u32, max: u32) -> Option<u32> {
        self.int_as(st, idx, min, max)
    }

    /// A port number 0-65535 from argument `idx`.
    pub fn port(&mut self, st: &Statement, idx: usize) -> Option<u16> {
        self.int_as(st, idx, 0, 65535)
    }

    /// A time in seconds (decimals allowed, as keepalived's `read_timer`) from argument `idx`.
    pub fn secs(&mut self, st: &Statement, idx: usize) -> Option<Duration> {
        self.parsed(st, idx, "a time in seconds", parse_secs)
    }

    /// A time in seconds above zero (keepalived's `read_timer` with a minimum of 1 us, as for
    /// `delay_loop`) from argument `idx`.
    pub fn positive_secs(&mut self, st: &Statement, idx: usize) -> Option<Duration> {
        self.parsed(st, idx, "a time in seconds above 0", |raw| {
            parse_secs(raw).filter(|d| !d.is_zero())
        })
    }

    /// A time in seconds in `min..=max` (keepalived's `read_timer` bounds) from argument `idx`.
    pub fn secs_in(
        &mut self,
        st: &Statement,
        idx: usize,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let what = format!("a time of {}-{} s", min.as_secs_f64(), max.as_secs_f64());
        self.parsed(st, idx, &what, |raw| {
            parse_secs(raw).filter(|d| *d >= min && *d <= max)
        })
    }

    /// An IP address from argument `idx`.
    pub fn ip(&mut self, st: &Statement, idx: usize) -> Option<IpAddr> {
        self.parsed(st, idx, "an IP address", |raw| raw.parse().ok())
    }

    /// A flag keyword with an optional `true|false|yes|no|on|off` argument (absent means true;
    /// lower case only, as keepalived's `check_true_false`).
    pub fn flag(&mut self, st: &Statement) -> Option<bool> {
        match st.args.first() {
            None => Some(true),
            Some(v) => match v.as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => {
                    self.error(
                        &st.span,
                        format!(
                            "{}: expected true or false, got '{}'",
                            st.keyword, st.args[0]
                        ),
                    );
                    None
                }
            },
        }
    }

    /// One of `choices` (compared case-insensitively when `nocase`), from argument `idx`.
    pub fn choice<'c>(
        &mut self,
        st: &Statement,
        idx: usize,
        choices: &[&'c str],
        nocase: bool,
    ) -> Option<&'c str> {
        let what = choices.join("|");
        self.parsed(st, idx, &what, |raw| {
            choices.iter().copied().find(|c| {
                if nocase {
                    c.eq_ignore_ascii_case(raw)
                } else {
                    *c == raw
                }
            })
        })
    }
}

/// `raw` without the leading blanks C's `strtoul`/`strtod` skip (`isspace`): keepalived reads
/// numbers with them, so a quoted `"  64"` is 64, while trailing blanks are refused.
fn skip_c_space(raw: &str) -> &str {
    raw.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
}

/// Parses keepalived's seconds value: an unsigned decimal, optionally with a fraction (after
/// leading blanks, as `strtod` reads it).
pub fn parse_secs(raw: &str) -> Option<Duration> {
    let raw = skip_c_space(raw);
    if raw.is_empty() || !raw.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let v: f64 = raw.parse().ok()?;
    if !v.is_finite() || v > 4_294_967.0 {
        return None;
    }
    Some(Duration::from_micros((v * 1_000_000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::parse_secs;
    use std::time::Duration;

    #[test]
    fn numbers_may_start_with_blanks_as_strtoul_reads_them() {
        assert_eq!(parse_secs("  64"), Some(Duration::from_secs(64)));
        assert_eq!(parse_secs("\t1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_secs("64 "), None, "trailing blanks are refused");
        assert_eq!(super::skip_c_space(" \t 2"), "2");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_secs("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_secs("-1"), None);
        assert_eq!(parse_secs("x"), None);
    }
}
