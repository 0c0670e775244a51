//! `~SEQ(var, start, step, end)`, `~SEQx(...)` and `~LST(var, v1, v2, ...)` line replication, as
//! keepalived 2.2.7 parses them (lib/parser.c: `add_seq`, `add_lst`).
//!
//! `~SEQ(end)` counts from 1 (or -1 when end is negative) towards end; `~SEQ(start, end)` steps by
//! 1 or -1; `~SEQ(start, step, end)` needs a step towards end. Numbers are read as C's
//! `strtol(..., 0)` reads them (`0x10`, `010`), after `$NAME` substitution. `~SEQx` writes the
//! variable in hexadecimal and needs non-negative bounds. `~LST({A, B}, {1, 2}, {3}) ...` sets
//! several variables per round; missing values are empty.

use crate::defs::{at, BuiltinEnv, Cursor, Defs, Replaced};

/// One pending replication: the variables to set and the text to produce each round.
#[derive(Debug, Clone)]
pub struct Seq {
    /// `~SEQ` or `~LST`.
    pub kind: SeqKind,
    /// The rest of the line after the closing `)`.
    pub text: Vec<u8>,
}

/// The variable part of a [`Seq`].
#[derive(Debug, Clone)]
pub enum SeqKind {
    /// A number sequence.
    Numbers {
        /// Variable name.
        var: Vec<u8>,
        /// Next value.
        next: i64,
        /// Last value.
        last: i64,
        /// Step (never 0).
        step: i64,
        /// Hexadecimal output.
        hex: bool,
    },
    /// A value list.
    List {
        /// Variable names.
        params: Vec<Vec<u8>>,
        /// One set of values per round (as many as `params`).
        values: Vec<Vec<Vec<u8>>>,
        /// The next set.
        next: usize,
    },
}

impl Seq {
    /// Sets the variables for the next round in `defs` and returns the text, plus `true` if this
    /// was the last round.
    pub fn step(&mut self, defs: &mut Defs) -> (Vec<u8>, bool) {
        match &mut self.kind {
            SeqKind::Numbers {
                var,
                next,
                last,
                step,
                hex,
            } => {
                let val = if *hex {
                    format!("{:x}", *next as u64)
                } else {
                    next.to_string()
                };
                defs.set(var, val.as_bytes());
                let done = match next.checked_add(*step) {
                    Some(n) => {
                        *next = n;
                        (*step > 0 && n > *last) || (*step < 0 && n < *last)
                    }
                    None => true,
                };
                (self.text.clone(), done)
            }
            SeqKind::List {
                params,
                values,
                next,
            } => {
                if let Some(set) = values.get(*next) {
                    for (p, v) in params.iter().zip(set) {
                        defs.set(p, v);
                    }
                }
                *next += 1;
                (self.text.clone(), *next >= values.len())
            }
        }
    }
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while at(b, i) == b' ' || at(b, i) == b'\t' {
        i += 1;
    }
    i
}

/// The index of the first byte of `b[i..]` in `set` (or the end).
fn cspn(b: &[u8], mut i: usize, set: &[u8]) -> usize {
    while i < b.len() && !set.contains(&b[i]) {
        i += 1;
    }
    i
}

/// C's `strtol(s, &end, 0)` from `i`: the value (saturating) and the index after it (`i` itself
/// when there is no number).
pub fn strtol(s: &[u8], mut i: usize) -> (i64, usize) {
    let start = i;
    while matches!(at(s, i), b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let neg = match at(s, i) {
        b'-' => {
            i += 1;
            true
        }
        b'+' => {
            i += 1;
            false
        }
        _ => false,
    };
    let (base, from) =
        if at(s, i) == b'0' && (at(s, i + 1) | 0x20) == b'x' && at(s, i + 2).is_ascii_hexdigit() {
            (16u32, i + 2)
        } else if at(s, i) == b'0' {
            (8, i)
        } else {
            (10, i)
        };
    let mut j = from;
    let mut v: i128 = 0;
    let mut any = false;
    while let Some(d) = char::from(at(s, j)).to_digit(base) {
        v = (v * i128::from(base) + i128::from(d)).min(i128::from(u64::MAX));
        j += 1;
        any = true;
    }
    if !any {
        return (0, start);
    }
    let v = if neg { -v } else { v };
    (
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        j,
    )
}

/// Why a `~SEQ`/`~LST` line was rejected: keepalived's specific message, if it gives one (it
/// always adds "Invalid ~SEQ specification '...'" after).
pub type SeqError = Option<String>;

/// keepalived's `add_seq()` on `buf` (which starts with `~SEQ`).
pub fn parse_seq(
    buf: &[u8],
    defs: &mut Defs,
    seq_count: usize,
    env: &mut BuiltinEnv<'_>,
) -> Result<Seq, SeqError> {
    let shown = String::from_utf8_lossy(buf).into_owned();
    let mut p = 4;
    let hex = at(buf, p) == b'x';
    if hex {
        p += 1;
    }
    p = skip_blanks(buf, p);
    if at(buf, p) != b'(' {
        return Err(None);
    }
    p = skip_blanks(buf, p + 1);
    let var_start = p;
    p = cspn(buf, p, b" \t,)");
    let var = buf[var_start..p].to_vec();
    p = skip_blanks(buf, p);
    if at(buf, p) == 0 || at(buf, p) == b')' || p == var_start {
        return Err(Some(format!("Invalid ~SEQ definition '{shown}'")));
    }
    p = skip_blanks(buf, p + 1);
    let Some(close) = buf[p.min(buf.len())..]
        .iter()
        .position(|&c| c == b')')
        .map(|i| p + i)
    else {
        return Err(Some(format!("~SEQ parameter strings too long '{shown}'")));
    };
    // keepalived copies the parameters into a 64-byte buffer.
    const SEQ_BUF: usize = 3 * 20 + 3 + 1;
    if close + 2 - p > SEQ_BUF {
        return Err(Some(format!("~SEQ parameter strings too long '{shown}'")));
    }
    let mut params = buf[p..=close].to_vec();
    let mut multiline: Option<Cursor> = None;
    if defs.replace(&mut params, SEQ_BUF, &mut multiline, seq_count, env) == Replaced::Runaway {
        return Err(Some(format!("Invalid ~SEQ definition '{shown}'")));
    }
    if multiline.is_some() {
        return Err(Some(format!(
            "~SEQ parameter is multiline definition '{shown}'"
        )));
    }
    let invalid = || Some(format!("Invalid ~SEQ definition '{shown}'"));
    let b = &params;
    let (one, q) = strtol(b, 0);
    let q = skip_blanks(b, q);
    let (start, step, end);
    if at(b, q) == b')' {
        end = one;
        step = if end < 1 { -1 } else { 1 };
        start = if end < 0 { -1 } else { 1 };
    } else {
        if at(b, q) != b',' {
            return Err(invalid());
        }
        let (two, q) = strtol(b, q + 1);
        let q = skip_blanks(b, q);
        if at(b, q) == b')' {
            start = one;
            end = two;
            step = if start <= end { 1 } else { -1 };
        } else {
            if at(b, q) != b',' {
                return Err(invalid());
            }
            let (three, q) = strtol(b, q + 1);
            let q = skip_blanks(b, q);
            if at(b, q) != b')' {
                return Err(invalid());
            }
            (start, step, end) = (one, two, three);
            if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
                return Err(Some(format!("Invalid ~SEQ values '{shown}'")));
            }
        }
    }
    if hex && (start < 0 || end < 0) {
        return Err(Some(format!(
            "~SEQx is only valid for positive numbers '{shown}'"
        )));
    }
    let text_start = skip_blanks(buf, close + 1);
    Ok(Seq {
        kind: SeqKind::Numbers {
            var,
            next: start,
            last: end,
            step,
            hex,
        },
        text: buf[text_start.min(buf.len())..].to_vec(),
    })
}

/// keepalived's `add_lst()` on `buf` (which starts with `~LST`).
pub fn parse_lst(buf: &[u8]) -> Result<Seq, SeqError> {
    let mut p = skip_blanks(buf, 4);
    if at(buf, p) != b'(' {
        return Err(None);
    }
    p = skip_blanks(buf, p + 1);
    let mut end_char = b',';
    if at(buf, p) == b'{' {
        end_char = b'}';
        p = skip_blanks(buf, p + 1);
    }
    let mut params = Vec::new();
    loop {
        let s = p;
        p = cspn(buf, p, b" \t,}");
        params.push(buf[s..p].to_vec());
        p = skip_blanks(buf, p);
        if at(buf, p) == end_char {
            break;
        }
        if at(buf, p) != b',' {
            return Err(None);
        }
        p = skip_blanks(buf, p + 1);
    }
    let num_vars = params.len() - 1;
    if at(buf, p) == b'}' {
        p = skip_blanks(buf, p + 1);
    }
    if at(buf, p) != b',' {
        return Err(None);
    }
    p = skip_blanks(buf, p + 1);
    let mut values = Vec::new();
    loop {
        let mut set = Vec::new();
        let mut end_char = b',';
        if at(buf, p) == b'{' {
            end_char = b'}';
            p = skip_blanks(buf, p + 1);
        }
        let mut num_values = 0;
        loop {
            let s = p;
            p = cspn(buf, p, b" \t,})");
            set.push(buf[s..p].to_vec());
            p = skip_blanks(buf, p);
            if at(buf, p) == end_char || (at(buf, p) == b')' && end_char == b',') {
                break;
            }
            if at(buf, p) != b',' {
                return Err(None);
            }
            p = skip_blanks(buf, p + 1);
            num_values += 1;
            if num_values > num_vars {
                return Err(Some(format!(
                    "~LST specification has too many values '{}'",
                    String::from_utf8_lossy(buf)
                )));
            }
        }
        while set.len() < params.len() {
            set.push(Vec::new());
        }
        values.push(set);
        if at(buf, p) == b'}' && end_char == b'}' {
            p = skip_blanks(buf, p + 1);
        }
        if at(buf, p) == b')' {
            break;
        }
        if at(buf, p) != b',' {
            return Err(None);
        }
        p = skip_blanks(buf, p + 1);
    }
    let text_start = skip_blanks(buf, p + 1);
    Ok(Seq {
        kind: SeqKind::List {
            params,
            values,
            next: 0,
        },
        text: buf[text_start.min(buf.len())..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::Rng;

    fn rounds(line: &str) -> Result<Vec<String>, SeqError> {
        let mut defs = Defs::standard();
        let mut rng = Rng::from_clock();
        let mut env = BuiltinEnv {
            pwd: b"/",
            instance: b"x",
            rng: &mut rng,
        };
        let mut seq = if line.starts_with("~SEQ") {
            parse_seq(line.as_bytes(), &mut defs, 0, &mut env)?
        } else {
            parse_lst(line.as_bytes())?
        };
        let mut out = Vec::new();
        loop {
            let (_, done) = seq.step(&mut defs);
            let vals: Vec<String> = ["i", "A", "B"]
                .iter()
                .filter_map(|n| defs.defs.iter().find(|d| d.name == n.as_bytes()))
                .map(|d| String::from_utf8_lossy(&d.value).into_owned())
                .collect();
            out.push(vals.join(","));
            if done || out.len() > 100 {
                return Ok(out);
            }
        }
    }

    #[test]
    fn seq_forms() {
        assert_eq!(rounds("~SEQ(i, 3) x").unwrap(), ["1", "2", "3"]);
        assert_eq!(rounds("~SEQ(i,-2) x").unwrap(), ["-1", "-2"]);
        assert_eq!(rounds("~SEQ(i,0) x").unwrap(), ["1", "0"]);
        assert_eq!(rounds("~SEQ(i,5,3) x").unwrap(), ["5", "4", "3"]);
        assert_eq!(rounds("~SEQ ( i , 1 , 2 , 6 ) x").unwrap(), ["1", "3", "5"]);
        assert_eq!(
            rounds("~SEQx(i,0x90,0x10,0xc0) x").unwrap(),
            ["90", "a0", "b0", "c0"]
        );
        assert!(rounds("~SEQ(i,1,-1,5) x")
            .unwrap_err()
            .unwrap()
            .starts_with("Invalid ~SEQ values"));
        assert!(rounds("~SEQx(i,-1,5) x").is_err());
        assert!(rounds("~SEQ(i) x").is_err());
        assert!(rounds("~SEQ(i,1,5 x").is_err());
        assert_eq!(rounds("~SEQ x").unwrap_err(), None);
    }

    #[test]
    fn lst_forms() {
        assert_eq!(rounds("~LST(A, a, b) x").unwrap(), ["a", "b"]);
        assert_eq!(rounds("~LST({A, B}, {1,2},{3}) x").unwrap(), ["1,2", "3,"]);
        assert!(rounds("~LST(A, {1,2}) x").unwrap_err().is_some());
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol(b" 0x1f)", 0), (31, 5));
        assert_eq!(strtol(b"010", 0), (8, 3));
        assert_eq!(strtol(b"-7,", 0), (-7, 2));
        assert_eq!(strtol(b"0x", 0), (0, 1));
        assert_eq!(strtol(b"z", 0), (0, 0));
    }
}
