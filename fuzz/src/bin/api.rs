//! AFL binary of the `api` target (`scripts/fuzz api`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::api::target(data));
}
