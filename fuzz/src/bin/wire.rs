//! AFL binary of the `wire` target (`scripts/fuzz wire`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::wire::target(data));
}
