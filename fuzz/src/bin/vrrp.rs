//! AFL binary of the `vrrp` target (`scripts/fuzz vrrp`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::vrrp::target(data));
}
