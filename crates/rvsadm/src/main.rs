//! rvsadm, ipvsadm for rvsd.
fn main() {}
