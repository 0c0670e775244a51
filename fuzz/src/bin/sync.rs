//! AFL binary of the `sync` target (`scripts/fuzz sync`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::sync::target(data));
}
