//! The SIP Call-ID that IPVS's SIP persistence engine (`ip_vs_pe_sip`) keys templates by,
//! found as netfilter's SIP helper finds the `Call-ID:` header (or its compact form `i:`):
//! at the start of a line (not a continuation line), name matched without regard to case,
//! optional blanks around the colon, then a word, optionally `@` and a second word.

/// IPVS's `IP_VS_PEDATA_MAXLEN`: longer Call-IDs are not used.
pub(crate) const PEDATA_MAXLEN: usize = 255;

/// The Call-ID of the SIP message `payload` (a UDP datagram's data), searched from `from`
/// bytes in. IPVS (`ip_vs_sip_fill_param`) passes the payload's offset in the packet (IP and
/// UDP header lengths) as that start, so the first bytes of the message are never searched
/// (they are the request or status line, which no header may share anyway). `None`, as for
/// IPVS's `get_callid`, when there is none, it is longer than [`PEDATA_MAXLEN`] or it is not
/// followed by a line terminator.
pub(crate) fn call_id(payload: &[u8], from: usize) -> Option<&[u8]> {
    let mut at = from;
    loop {
        let (off, len) = match find_header(payload, at)? {
            Found::Value(off, len) => (off, len),
            // A Call-ID header with no word: search on past it (`get_callid`).
            Found::Empty(off) => {
                at = at.checked_add(off)?;
                continue;
            }
        };
        if len > PEDATA_MAXLEN {
            return None;
        }
        return match payload.get(off + len) {
            Some(b'\r' | b'\n') => payload.get(off..off + len),
            _ => None,
        };
    }
}

enum Found {
    /// The value's offset and length.
    Value(usize, usize),
    /// A header without a value, at this offset.
    Empty(usize),
}

/// `ct_sip_get_header` for `SIP_HDR_CALL_ID`, scanning from `from`.
fn find_header(b: &[u8], from: usize) -> Option<Found> {
    let limit = b.len();
    let mut i = from;
    while i < limit {
        // The beginning of a line.
        if b[i] != b'\r' && b[i] != b'\n' {
            i += 1;
            continue;
        }
        i += 1;
        if i >= limit {
            return None;
        }
        if b[i - 1] == b'\r' && b[i] == b'\n' {
            i += 1;
            if i >= limit {
                return None;
            }
        }
        // Continuation lines are skipped.
        if b[i] == b' ' || b[i] == b'\t' {
            continue;
        }
        let rest = &b[i..];
        if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"call-id") {
            i += 7;
        } else if rest.len() >= 2
            && rest[0].eq_ignore_ascii_case(&b'i')
            && !rest[1].is_ascii_alphabetic()
        {
            i += 1;
        } else {
            continue;
        }
        // The colon, blanks around it.
        i = skip_whitespace(b, i)?;
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        if i >= limit {
            return None;
        }
        i = skip_whitespace(b, i)?;
        let len = callid_len(&b[i.min(limit)..]);
        return Some(if len == 0 {
            Found::Empty(i)
        } else {
            Found::Value(i, len)
        });
    }
    None
}

/// Skips blanks, and a line break followed by a continuation line (`sip_skip_whitespace`);
/// `None` at a line break that ends the header.
fn skip_whitespace(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'\r' | b'\n' => return follow_continuation(b, i),
            _ => break,
        }
    }
    Some(i)
}

/// `sip_follow_continuation`: past a line break and the blanks of the continuation line that
/// follows it, or `None` when the next line is not one.
fn follow_continuation(b: &[u8], mut i: usize) -> Option<usize> {
    let limit = b.len();
    if b[i] == b'\r' {
        i += 1;
        if i >= limit {
            return None;
        }
    }
    if b[i] == b'\n' {
        i += 1;
        if i >= limit {
            return None;
        }
    }
    if b[i] != b' ' && b[i] != b'\t' {
        return None;
    }
    while i < limit && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    Some(i)
}

/// Netfilter's `iswordc`: the characters of a SIP word.
fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'"'
                | b'%'
                | b'('..=b'+'
                | b':'
                | b'<'
                | b'>'
                | b'?'
                | b'['..=b']'
                | b'_'
                | b'{'
                | b'}'
                | b'~'
                | b'-'..=b'/'
                | b'\''
        )
}

fn word_len(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| is_word_char(c)).count()
}

/// `callid_len`: a word, or `word@word`.
fn callid_len(b: &[u8]) -> usize {
    let len = word_len(b);
    if len == 0 || b.get(len) != Some(&b'@') {
        return len;
    }
    match word_len(&b[len + 1..]) {
        0 => 0,
        domain => len + 1 + domain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\r\n";

    #[test]
    fn the_call_id_header_and_its_compact_form() {
        assert_eq!(
            call_id(INVITE, 28),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        let compact =
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nI :\t 77x\nMax-Forwards: 70\r\n";
        assert_eq!(call_id(compact, 28), Some(&b"77x"[..]));
        let lower = b"BYE sip:alice@atlanta.example.com SIP/2.0\ncall-id:abc\r\n";
        assert_eq!(call_id(lower, 28), Some(&b"abc"[..]));
    }

    #[test]
    fn no_call_id_no_key() {
        // None at all, not at a line start, a compact name that is a longer word, overlong,
        // unterminated.
        assert_eq!(call_id(b"hello world\r\nVia: x\r\n", 0), None);
        assert_eq!(call_id(b"REGISTER sip:x SIP/2.0 Call-ID: abc\r\n", 0), None);
        assert_eq!(call_id(b"REGISTER sip:x SIP/2.0\r\nInfo: abc\r\n", 0), None);
        let long = [b"X\r\nCall-ID: ".as_slice(), &[b'a'; 256], b"\r\n"].concat();
        assert_eq!(call_id(&long, 0), None);
        let ok = [b"X\r\nCall-ID: ".as_slice(), &[b'a'; 255], b"\r\n"].concat();
        assert_eq!(call_id(&ok, 0).map(<[u8]>::len), Some(255));
        assert_eq!(call_id(b"X\r\nCall-ID: abc", 0), None);
        // A continuation line is not a header; a header ending at its colon ends the search;
        // a Call-ID that is no word is passed over.
        assert_eq!(call_id(b"X\r\n Call-ID: abc\r\n", 0), None);
        assert_eq!(call_id(b"X\r\nCall-ID: \r\nCall-ID: two\r\n", 0), None);
        assert_eq!(
            call_id(b"X\r\nCall-ID: ;x\r\nCall-ID: two\r\n", 0),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn the_first_bytes_are_not_searched() {
        // As IPVS, the search starts as many bytes in as the IP and UDP headers are long.
        let short = b"A\r\nCall-ID: early\r\n";
        assert_eq!(call_id(short, 0), Some(&b"early"[..]));
        assert_eq!(call_id(short, 28), None);
    }
}
