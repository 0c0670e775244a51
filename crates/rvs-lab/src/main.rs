//! rvs-lab command line.
fn main() {}
