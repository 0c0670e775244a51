//! Splits one file's text into lines of words, as keepalived does.
//!
//! Rules (keepalived 2.2): `#` and `!` start a comment anywhere outside quotes; `"..."` is one word
//! (quotes removed); `{` and `}` are words of their own even when attached to others; a line ending
//! with `\` continues on the next line.

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

/// The words of one logical line and the 1-based line number it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Starting line number.
    pub number: u32,
    /// Its words.
    pub words: Vec<Word>,
}

/// A lexical error: the line number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// 1-based line number.
    pub line: u32,
    /// Description.
    pub message: String,
}

/// Splits `text` into logical lines (empty and comment-only lines are dropped).
pub fn lex(text: &str) -> Result<Vec<Line>, LexError> {
    let mut out = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let number = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let (start, mut joined) = match pending.take() {
            Some((start, mut acc)) => {
                acc.push(' ');
                acc.push_str(raw);
                (start, acc)
            }
            None => (number, raw.to_string()),
        };
        let code = strip_comment(&joined);
        if let Some(stripped) = code.trim_end().strip_suffix('\\') {
            joined = stripped.to_string();
            pending = Some((start, joined));
            continue;
        }
        push_line(&mut out, start, code)?;
    }
    // A `\` on the last line continues into the end of the file.
    if let Some((start, acc)) = pending {
        push_line(&mut out, start, strip_comment(&acc))?;
    }
    Ok(out)
}

/// Appends the words of `code` (comment already stripped) as the line starting at `start`,
/// unless it has none.
fn push_line(out: &mut Vec<Line>, start: u32, code: &str) -> Result<(), LexError> {
    let words = split_words(code).map_err(|message| LexError {
        line: start,
        message,
    })?;
    if !words.is_empty() {
        out.push(Line {
            number: start,
            words,
        });
    }
    Ok(())
}

/// The part of `line` before a `#` or `!` that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '!' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn split_words(code: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    current.push(q);
                }
                if !closed {
                    return Err("unterminated quoted string".to_string());
                }
            }
            '{' | '}' => {
                if in_word {
                    words.push(Word::Text(std::mem::take(&mut current)));
                    in_word = false;
                }
                words.push(if c == '{' { Word::Open } else { Word::Close });
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(Word::Text(std::mem::take(&mut current)));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(Word::Text(current));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &Line) -> Vec<String> {
        line.words
            .iter()
            .map(|w| match w {
                Word::Text(t) => t.clone(),
                Word::Open => "{".into(),
                Word::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn comments_quotes_braces_and_continuations() {
        let lines =
            lex("a b # c\n! all comment\n  x{y}  \nmisc_path \"/bin/x -a # b\"\nfoo \\\n bar\n")
                .unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(texts(&lines[0]), ["a", "b"]);
        assert_eq!(lines[1].number, 3);
        assert_eq!(texts(&lines[1]), ["x", "{", "y", "}"]);
        assert_eq!(texts(&lines[2]), ["misc_path", "/bin/x -a # b"]);
        assert_eq!(lines[3].number, 5);
        assert_eq!(texts(&lines[3]), ["foo", "bar"]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = lex("ok\nmisc_path \"/bin/x\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
