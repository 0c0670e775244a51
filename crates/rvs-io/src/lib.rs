//! The OS boundary: packet sockets, rtnetlink, nftables.
