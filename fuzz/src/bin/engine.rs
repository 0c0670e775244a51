//! AFL binary of the `engine` target (`scripts/fuzz engine`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::engine::target(data));
}
