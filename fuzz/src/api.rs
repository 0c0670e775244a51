//! rvs-api: the control protocol as rvsd reads it. The input is a byte stream cut into lines by
//! `read_frame` and by `FrameBuffer` (fed in chunks whose sizes the first byte picks, with a
//! small line limit); both must agree with splitting at newlines. Each line is decoded as a
//! command and as a reply; what decodes encodes to one line that decodes to the same value.

use std::io::Cursor;

use rvs_api::{
    decode_command, decode_reply, encode_command, encode_reply, read_frame, ApiError, FrameBuffer,
};

/// Line limit of the `FrameBuffer` under test.
const LIMIT: usize = 512;

/// Runs the target.
pub fn target(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut expected: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let partial = expected.pop().filter(|l| !l.is_empty());

    let mut reader = Cursor::new(stream);
    let mut lines = Vec::new();
    loop {
        match read_frame(&mut reader) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => break,
            Err(ApiError::Closed) => {
                assert!(partial.is_some(), "Closed without a partial line");
                break;
            }
            Err(e) => panic!("read_frame: {e}"),
        }
    }
    assert_eq!(lines, expected, "read_frame lines");

    let mut fb = FrameBuffer::with_limit(LIMIT);
    let mut framed = Vec::new();
    for part in stream.chunks(usize::from(chunk).max(1)) {
        fb.push(part);
        while let Some(f) = fb.next_frame() {
            framed.push(f.map_err(|e| e.to_string()));
        }
    }
    let short: Vec<_> = expected.iter().filter(|l| l.len() <= LIMIT).collect();
    let got: Vec<_> = framed.iter().filter_map(|f| f.as_ref().ok()).collect();
    assert_eq!(got, short, "FrameBuffer lines");

    for line in &lines {
        if let Ok(c) = decode_command(line) {
            let enc = encode_command(&c).expect("encodes");
            assert_eq!(enc.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(
                decode_command(enc.trim_ascii_end()).ok(),
                Some(c),
                "command"
            );
        }
        if let Ok(r) = decode_reply(line) {
            let enc = encode_reply(&r).expect("encodes");
            assert_eq!(enc.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(decode_reply(enc.trim_ascii_end()).ok(), Some(r), "reply");
        }
    }
}
