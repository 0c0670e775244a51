//! AFL binary of the `keepalived` target (`scripts/fuzz keepalived`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::keepalived::target(data));
}
