//! AFL binary of the `rvsadm_restore` target (`scripts/fuzz rvsadm_restore`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::rvsadm_restore::target(data));
}
