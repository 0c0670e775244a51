//! `$NAME=value` definitions and `$NAME` / `${NAME}` substitution, as keepalived 2.2.7 does them
//! (lib/parser.c: `check_definition`, `find_definition`, `replace_param`, `set_std_definitions`).
//!
//! - A definition is a line `$NAME=VALUE` (no blank before `=`; NAME is `[A-Za-z_][A-Za-z0-9_]*`);
//!   blanks after `=` are skipped. A value ending in `\` starts a multi-line definition (see
//!   `preprocess.rs`), whose lines are joined with `\n`.
//! - `$NAME` is replaced only when followed by a blank, `,`, `)` or the end of the line;
//!   `${NAME}` anywhere. An undefined name stays as written. A multi-line definition is replaced
//!   only when its reference ends the line. Replacement text is scanned again at once (so
//!   definitions may refer to others); a value starting with `~` stops the scan.
//! - Built-ins: `_PWD` (the directory of the file being read), `_INSTANCE` (the config id),
//!   `_RANDOM` (`${_RANDOM [MIN [MAX]]}`, default 0..32767), `_HASH` (`#`), `_BANG` (`!`). A user
//!   definition of the same name replaces a built-in.

use std::rc::Rc;

/// keepalived's line buffer size (`MAXBUF`): a substitution may not make a line this long.
pub const MAXBUF: usize = 1024;

/// The longest a multi-line definition may grow (keepalived has no limit).
pub const MAX_DEFINITION: usize = 1 << 20;

/// How many replacements one line may take before it is given up on (keepalived loops forever on
/// `$A=$A`).
const MAX_REPLACEMENTS: usize = 10_000;

/// The byte at `i`, or 0 past the end (C string semantics).
pub fn at(buf: &[u8], i: usize) -> u8 {
    buf.get(i).copied().unwrap_or(0)
}

/// A built-in definition whose value is computed at each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `_PWD`.
    Pwd,
    /// `_INSTANCE`.
    Instance,
    /// `_RANDOM`.
    Random,
}

/// One definition.
#[derive(Debug, Clone)]
pub struct Def {
    /// Its name, without `$`.
    pub name: Vec<u8>,
    /// Its value (lines separated by `\n` for a multi-line definition).
    pub value: Rc<Vec<u8>>,
    /// Defined with a trailing `\`.
    pub multiline: bool,
    /// Computed at each use.
    pub builtin: Option<Builtin>,
    /// Numeric parameters accepted (`${_RANDOM 1 9}`).
    pub max_params: u8,
}

/// A position in a multi-line definition's value still to be read.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The value.
    pub text: Rc<Vec<u8>>,
    /// The next byte to read.
    pub pos: usize,
}

/// What [`Defs::replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// Nothing was replaced.
    Nothing,
    /// At least one reference was replaced.
    Some,
    /// A replacement would have made the line [`MAXBUF`] long; the line is left part-replaced.
    TooLong,
    /// The replacements do not terminate.
    Runaway,
}

/// What the built-ins need from the reader.
pub struct BuiltinEnv<'a> {
    /// `${_PWD}`.
    pub pwd: &'a [u8],
    /// `${_INSTANCE}`.
    pub instance: &'a [u8],
    /// For `${_RANDOM}`.
    pub rng: &'a mut Rng,
}

/// A small xorshift generator standing in for `random()`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock, as keepalived seeds `random()` with `time()`.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng(nanos | 1)
    }

    /// The next value in 0..2^31, as `random()` returns.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x >> 33
    }
}

/// The definitions in force and the multi-line expansion state that `replace_param` shares with
/// the reader.
#[derive(Debug, Clone)]
pub struct Defs {
    /// In definition order (built-ins first).
    pub defs: Vec<Def>,
    /// Outer multi-line expansions suspended by an inner one, with their sequence depth.
    pub stack: Vec<(Cursor, usize)>,
    /// keepalived's `multiline_seq_depth`: sequences created before the current multi-line
    /// expansion wait until it ends.
    pub seq_depth: usize,
}

/// A reference found by [`Defs::find`].
struct Found {
    index: usize,
    /// One past the reference's last byte.
    end: usize,
    /// The parameters' first and last byte (inclusive), for `${_RANDOM 1 9}`.
    params: Option<(usize, usize)>,
}

fn plain(name: &str, value: &str) -> Def {
    Def {
        name: name.as_bytes().to_vec(),
        value: Rc::new(value.as_bytes().to_vec()),
        multiline: false,
        builtin: None,
        max_params: 0,
    }
}

impl Defs {
    /// keepalived's standard definitions.
    pub fn standard() -> Self {
        let builtin = |name: &str, b: Builtin, max_params: u8| Def {
            builtin: Some(b),
            max_params,
            ..plain(name, "")
        };
        Defs {
            defs: vec![
                builtin("_PWD", Builtin::Pwd, 0),
                builtin("_INSTANCE", Builtin::Instance, 0),
                builtin("_RANDOM", Builtin::Random, 2),
                plain("_HASH", "#"),
                plain("_BANG", "!"),
            ],
            stack: Vec::new(),
            seq_depth: 0,
        }
    }

    fn lookup(&self, name: &[u8]) -> Option<usize> {
        self.defs.iter().position(|d| d.name == name)
    }

    /// keepalived's `set_definition()` (used by `~SEQ` and `~LST`): sets or creates `name`.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        match self.lookup(name) {
            Some(i) => {
                let d = &mut self.defs[i];
                d.value = Rc::new(value.to_vec());
                d.builtin = None;
            }
            None => self.defs.push(Def {
                name: name.to_vec(),
                value: Rc::new(value.to_vec()),
                multiline: false,
                builtin: None,
                max_params: 0,
            }),
        }
    }

    /// keepalived's `check_definition()`: if `buf` is `$NAME=VALUE`, records it and returns its
    /// index (the caller continues a multi-line definition when the definition is multi-line).
    pub fn check_definition(&mut self, buf: &[u8]) -> Option<usize> {
        if at(buf, 0) != b'$' {
            return None;
        }
        let c = at(buf, 1);
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return None;
        }
        let mut p = 2;
        while p < buf.len() && buf[p] != b'=' {
            if !(buf[p].is_ascii_alphanumeric() || buf[p] == b'_') {
                return None;
            }
            p += 1;
        }
        if at(buf, p) != b'=' {
            return None;
        }
        let name = &buf[1..p];
        p += 1;
        while at(buf, p) == b' ' || at(buf, p) == b'\t' {
            p += 1;
        }
        let mut value = buf[p.min(buf.len())..].to_vec();
        let multiline = value.last() == Some(&b'\\');
        if multiline {
            let mut len = value.len();
            while len >= 2 && (value[len - 2] == b' ' || value[len - 2] == b'\t') {
                len -= 1;
            }
            if len < 2 {
                value.clear();
            } else {
                value.truncate(len);
                value[len - 1] = b'\n';
            }
        }
        let idx = match self.lookup(name) {
            Some(i) => i,
            None => {
                self.defs.push(plain("", ""));
                let i = self.defs.len() - 1;
                self.defs[i].name = name.to_vec();
                i
            }
        };
        let d = &mut self.defs[idx];
        d.value = Rc::new(value);
        d.multiline = multiline;
        d.builtin = None;
        Some(idx)
    }

    /// Appends a line to the multi-line definition `idx`; `false` if that would make it longer
    /// than [`MAX_DEFINITION`].
    pub fn append(&mut self, idx: usize, text: &[u8]) -> bool {
        let Some(d) = self.defs.get_mut(idx) else {
            return true;
        };
        if d.value.len() + text.len() > MAX_DEFINITION {
            return false;
        }
        Rc::make_mut(&mut d.value).extend_from_slice(text);
        true
    }

    /// keepalived's `find_definition()` for a reference whose name starts at `buf[start]` (just
    /// after the `$`).
    fn find(&self, buf: &[u8], start: usize) -> Option<Found> {
        let mut i = start;
        let braces = at(buf, i) == b'{';
        if braces {
            i += 1;
        }
        let name_start = i;
        let c = at(buf, i);
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return None;
        }
        i += 1;
        while at(buf, i).is_ascii_alphanumeric() || at(buf, i) == b'_' {
            i += 1;
        }
        let name_end = i;
        let mut params = None;
        if braces {
            let mut first = None;
            let mut last = 0;
            while at(buf, i) == b' ' || at(buf, i).is_ascii_digit() {
                if at(buf, i) != b' ' {
                    first.get_or_insert(i);
                    last = i;
                }
                i += 1;
            }
            if let Some(f) = first {
                if last + 1 != i {
                    return None;
                }
                params = Some((f, last));
            }
            if at(buf, i) != b'}' {
                return None;
            }
        } else if !matches!(at(buf, i), b' ' | b'\t' | b',' | b')' | 0) {
            return None;
        }
        let allow_multiline = if braces {
            at(buf, name_end + 1) == 0
        } else {
            at(buf, name_end) == 0
        };
        let name = &buf[name_start..name_end];
        let index = self
            .defs
            .iter()
            .position(|d| d.name == name && (allow_multiline || !d.multiline))?;
        if params.is_some() && self.defs[index].max_params == 0 {
            return None;
        }
        Some(Found {
            index,
            end: if braces { i + 1 } else { name_end },
            params,
        })
    }

    /// keepalived's `replace_param()` on `buf`, which may not grow to `max_len` bytes.
    /// `multiline` is the multi-line expansion in progress; on a replacement it becomes the one
    /// to continue with.
    pub fn replace(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        multiline: &mut Option<Cursor>,
        seq_count: usize,
        env: &mut BuiltinEnv<'_>,
    ) -> Replaced {
        let mut cur = 0;
        let mut found_any = false;
        let mut next: Option<Cursor> = None;
        let mut ml = multiline.clone();
        let mut rounds = 0;
        while let Some(off) = buf[cur.min(buf.len())..].iter().position(|&c| c == b'$') {
            let pos = cur + off;
            if at(buf, pos + 1) == 0 {
                break;
            }
            let Some(found) = self.find(buf, pos + 1) else {
                cur = pos + 1;
                continue;
            };
            rounds += 1;
            if rounds > MAX_REPLACEMENTS {
                return Replaced::Runaway;
            }
            found_any = true;
            next = ml.clone();
            let is_multi = self.defs[found.index].multiline;
            if is_multi {
                if let Some(m) = &ml {
                    self.stack.push((m.clone(), self.seq_depth));
                }
                self.seq_depth = seq_count;
            }
            if let Some(b) = self.defs[found.index].builtin {
                let params = found.params.map(|(s, e)| &buf[s..=e]);
                let v = evaluate(b, params, env);
                self.defs[found.index].value = Rc::new(v);
            }
            let value = self.defs[found.index].value.clone();
            let replacement: &[u8] = if is_multi {
                let n = value
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(value.len());
                next = Some(Cursor {
                    text: value.clone(),
                    pos: (n + 1).min(value.len()),
                });
                ml = next.clone();
                &value[..n]
            } else {
                &value
            };
            let old = found.end - pos;
            if buf.len() + replacement.len() - old >= max_len {
                return Replaced::TooLong;
            }
            splice(buf, pos, found.end, found.params.is_some(), replacement);
            let first = value.iter().find(|&&c| c != b' ' && c != b'\t');
            if first == Some(&b'~') {
                break;
            }
        }
        if found_any {
            *multiline = next;
            Replaced::Some
        } else {
            Replaced::Nothing
        }
    }
}

/// Replaces `buf[pos..end]` with `with` the way keepalived's `replace_param` moves the text:
/// when a reference with parameters is replaced by shorter text, keepalived moves only the bytes
/// up to the one after the `}` and leaves the rest of the line where it was (so text following
/// `${_RANDOM 1 9}` on the same line is garbled); this reproduces that.
fn splice(buf: &mut Vec<u8>, pos: usize, end: usize, params: bool, with: &[u8]) {
    let old = end - pos;
    if params && with.len() < old {
        // Shortening: copy s -> d forwards until s reaches end (inclusive, NUL at the line end).
        let mut c = buf.clone();
        c.push(0);
        let mut s = pos + old - with.len();
        let mut d = pos;
        loop {
            let byte = c.get(s).copied().unwrap_or(0);
            if let Some(slot) = c.get_mut(d) {
                *slot = byte;
            }
            if s >= end || s >= c.len() {
                break;
            }
            d += 1;
            s += 1;
        }
        c[pos..pos + with.len()].copy_from_slice(with);
        let nul = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        c.truncate(nul);
        *buf = c;
    } else {
        buf.splice(pos..end, with.iter().copied());
    }
}

/// `strtoul(s, &end, 10)` from `i`: the value (saturating) and the index after it.
fn strtoul(s: &[u8], mut i: usize) -> (u64, usize) {
    let start = i;
    while matches!(at(s, i), b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut v: u64 = 0;
    let mut any = false;
    while at(s, i).is_ascii_digit() {
        v = v
            .saturating_mul(10)
            .saturating_add(u64::from(at(s, i) - b'0'));
        i += 1;
        any = true;
    }
    if any {
        (v, i)
    } else {
        (0, start)
    }
}

/// A built-in's value (keepalived's `get_cwd`, `get_instance`, `get_random`).
fn evaluate(b: Builtin, params: Option<&[u8]>, env: &mut BuiltinEnv<'_>) -> Vec<u8> {
    match b {
        Builtin::Pwd => env.pwd.to_vec(),
        Builtin::Instance => env.instance.to_vec(),
        Builtin::Random => {
            let (mut min, mut max) = (0u64, 32767u64);
            if let Some(p) = params {
                let (a, e) = strtoul(p, 0);
                min = a;
                if e < p.len().saturating_sub(1) {
                    max = strtoul(p, e).0;
                }
            }
            // keepalived prints at most as many digits as MAX has.
            let mut digits = 0;
            let mut v = (max as i64).unsigned_abs();
            loop {
                digits += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            let modulus = max.wrapping_sub(min).wrapping_add(1);
            let r = env.rng.next();
            let val = if modulus == 0 { r } else { r % modulus }.wrapping_add(min) as i64;
            let mut s = val.to_string().into_bytes();
            s.truncate(digits);
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(defs: &mut Defs, line: &str) -> (String, Replaced) {
        let mut rng = Rng(7);
        let mut env = BuiltinEnv {
            pwd: b"/etc/keepalived",
            instance: b"node1",
            rng: &mut rng,
        };
        let mut buf = line.as_bytes().to_vec();
        let mut ml = None;
        let r = defs.replace(&mut buf, MAXBUF, &mut ml, 0, &mut env);
        (String::from_utf8(buf).unwrap(), r)
    }

    #[test]
    fn definitions_and_references() {
        let mut d = Defs::standard();
        assert!(d.check_definition(b"$IP=  10.0.0.1").is_some());
        assert!(d.check_definition(b"$BAD NAME=1").is_none());
        assert!(d.check_definition(b"$1X=1").is_none());
        assert_eq!(run(&mut d, "a $IP b").0, "a 10.0.0.1 b");
        assert_eq!(run(&mut d, "a ${IP}:80").0, "a 10.0.0.1:80");
        assert_eq!(run(&mut d, "a $IP:80").1, Replaced::Nothing);
        assert_eq!(run(&mut d, "x ${UNDEF}").1, Replaced::Nothing);
        assert_eq!(
            run(&mut d, "${_INSTANCE} ${_PWD}").0,
            "node1 /etc/keepalived"
        );
        assert_eq!(run(&mut d, "k${_RANDOM 3 3}").0, "k3");
        // keepalived's garbling of the text after a parameterised reference.
        assert_eq!(run(&mut d, "k${_RANDOM 3 3}x y").0, "k3x_RANDOM 3 3}x y");
        assert!(d.check_definition(b"$A=$A").is_some());
        assert_eq!(run(&mut d, "$A").1, Replaced::Runaway);
        assert!(d.check_definition(b"$G=x$G").is_some());
        assert_eq!(run(&mut d, "$G").1, Replaced::TooLong);
    }
}
