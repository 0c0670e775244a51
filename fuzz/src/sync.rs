//! rvs-sync: `parse` of an arbitrary datagram (the first byte is the receiver's sync id, the
//! rest the datagram). What parses packs again into datagrams that parse to the same entries
//! (less `F_HASHED`, which a sender clears as the kernel does).

use rvs_sync::{pack, parse, Message, F_HASHED};

/// Runs the target.
pub fn target(data: &[u8]) {
    let Some((&syncid, datagram)) = data.split_first() else {
        return;
    };
    let Ok(Message::Conns {
        syncid: sender,
        mut conns,
        ..
    }) = parse(datagram, syncid)
    else {
        return;
    };
    for c in &mut conns {
        c.flags &= !F_HASHED;
    }
    let mut back = Vec::new();
    for m in pack(&conns, sender, 65_000) {
        match parse(&m, sender) {
            Ok(Message::Conns {
                conns, skipped: 0, ..
            }) => back.extend(conns),
            other => panic!("packed entries do not parse back: {other:?}"),
        }
    }
    assert_eq!(back, conns, "parse(pack(entries)) differs");
}
