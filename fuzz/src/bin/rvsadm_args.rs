//! AFL binary of the `rvsadm_args` target (`scripts/fuzz rvsadm_args`), built by `cargo afl build --features afl`.
fn main() {
    afl::fuzz!(|data: &[u8]| rvs_fuzz::rvsadm_args::target(data));
}
