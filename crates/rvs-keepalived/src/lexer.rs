//! keepalived's line-level text rules, on bytes (a file need not be UTF-8).
//!
//! Two steps, as keepalived 2.2.7 does them (lib/parser.c):
//! - [`decomment`] (keepalived's `decomment()`): leading blanks go; `#` or `!` outside `"..."`
//!   starts a comment; `\#` and `\!` outside quotes stand for the character itself; trailing blanks
//!   go, and a final `\` is kept (it only means something in a multi-line `$NAME=` definition —
//!   keepalived has no general line continuation).
//! - [`split_words`] (keepalived's `alloc_strvec_r()`): words are separated by space, tab, FF, LF,
//!   CR or VT only (a no-break space, byte 0xA0, is text); a word starting with `"` runs to the next
//!   `"` and keeps everything between, padding included; an unquoted word ends at a blank or a `"`.
//!
//! The preprocessor (`preprocess.rs`) splits lines at `{` and `}` before words are split, so a
//! line reaching [`words_of`] is either a lone brace or has no brace outside quotes. keepalived's
//! script-argument splitting (`alloc_strvec_quoted_escaped`, with `'...'` and `\n`-style escapes)
//! applies to script keywords only and is not done here.

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// A plain or quoted word.
    Text(String),
    /// `{`.
    Open,
    /// `}`.
    Close,
}

/// The bytes keepalived treats as word separators (`WHITE_SPACE_STR`).
pub fn is_white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\x0c' | b'\n' | b'\r' | b'\x0b')
}

/// `isblank()`: space or tab.
pub fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// A line after comment removal, and whether it has an unterminated `"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decommented {
    /// The remaining text.
    pub text: Vec<u8>,
    /// `true` if a `"` is left open (keepalived reports "Unterminated quote").
    pub unterminated: bool,
}

/// keepalived's `decomment()`: see the module documentation.
pub fn decomment(line: &[u8]) -> Decommented {
    let start = line
        .iter()
        .position(|&c| !is_blank(c))
        .unwrap_or(line.len());
    let mut v = line[start..].to_vec();
    let mut quote = false;
    let mut cont = false;
    let mut skip: Option<usize> = None;
    let mut p = 0;
    while p < v.len() {
        match v[p] {
            b'"' => {
                if skip.is_none() {
                    quote = !quote;
                }
                p += 1;
            }
            b'\\' => {
                if p + 1 < v.len() {
                    if !quote && (v[p + 1] == b'#' || v[p + 1] == b'!') {
                        v.remove(p);
                        p += 1;
                    } else {
                        p += 2;
                    }
                } else {
                    v.truncate(p);
                    cont = true;
                    break;
                }
            }
            b'#' | b'!' => {
                if !quote && skip.is_none() {
                    skip = Some(p);
                }
                p += 1;
            }
            _ => p += 1,
        }
    }
    if let Some(k) = skip {
        v.truncate(k);
    }
    while v.last().is_some_and(|&c| is_blank(c)) {
        v.pop();
    }
    if cont {
        v.push(b'\\');
    }
    Decommented {
        text: v,
        unterminated: quote,
    }
}

/// keepalived's `alloc_strvec_r()`: the words of `line`, or `Err` with the words before an
/// unmatched `"`.
pub fn split_words(line: &[u8]) -> Result<Vec<Vec<u8>>, Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_white(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(words);
        }
        if line[i] == b'"' {
            let start = i + 1;
            let Some(len) = line[start..].iter().position(|&c| c == b'"') else {
                return Err(words);
            };
            words.push(line[start..start + len].to_vec());
            i = start + len + 1;
        } else {
            let start = i;
            while i < line.len() && !is_white(line[i]) && line[i] != b'"' {
                i += 1;
            }
            words.push(line[start..i].to_vec());
        }
    }
}

/// The words of one preprocessed line: a lone `{` or `}` is a brace, anything else is split by
/// [`split_words`] (bytes that are not UTF-8 become U+FFFD). `Err` on an unmatched quote.
pub fn words_of(line: &[u8]) -> Result<Vec<Word>, ()> {
    match line {
        b"{" => Ok(vec![Word::Open]),
        b"}" => Ok(vec![Word::Close]),
        _ => split_words(line)
            .map(|ws| {
                ws.into_iter()
                    .map(|w| Word::Text(String::from_utf8_lossy(&w).into_owned()))
                    .collect()
            })
            .map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(s: &str) -> String {
        String::from_utf8(decomment(s.as_bytes()).text).unwrap()
    }

    #[test]
    fn comments_escapes_and_trailing_backslash() {
        assert_eq!(dc("  a b # c"), "a b");
        assert_eq!(dc("! all comment"), "");
        assert_eq!(
            dc("misc_path \"/bin/x -a # b\" ! c"),
            "misc_path \"/bin/x -a # b\""
        );
        assert_eq!(dc("a\\#b"), "a#b");
        assert_eq!(dc("\"a\\#b\""), "\"a\\#b\"");
        assert_eq!(dc("foo   \\"), "foo\\");
        assert_eq!(dc("a # b \\"), "a\\");
        assert!(decomment(b"x \"y").unterminated);
        assert!(!decomment(b"x \"y\"").unterminated);
    }

    #[test]
    fn words_quotes_and_blanks() {
        let w = split_words(b"warmup \"  64\"  k\xc2\xa0x a\"b c\"d").unwrap();
        let w: Vec<&[u8]> = w.iter().map(Vec::as_slice).collect();
        assert_eq!(
            w,
            [&b"warmup"[..], b"  64", b"k\xc2\xa0x", b"a", b"b c", b"d"]
        );
        assert_eq!(split_words(b"a \"b").unwrap_err(), vec![b"a".to_vec()]);
        assert_eq!(words_of(b"{"), Ok(vec![Word::Open]));
        assert_eq!(words_of(b"\"{\""), Ok(vec![Word::Text("{".into())]));
    }
}
