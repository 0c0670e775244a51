//! rvs-keepalived: a keepalived.conf (any bytes) parsed, checked and lowered as rvsd loads it
//! leniently, then rendered as `ipvsadm -Ln` views. Every lowered service must be a command
//! the control protocol can encode. Inputs that mention `include` are skipped: included files
//! come from the file system, which would make runs depend on the machine.

use std::path::Path;

use rvs_api::{encode_command, Command};
use rvs_keepalived::{dump, lower, parse_bytes_with, LoadOptions};

/// Runs the target.
pub fn target(data: &[u8]) {
    if data.windows(7).any(|w| w.eq_ignore_ascii_case(b"include")) {
        return;
    }
    let options = LoadOptions {
        instance: Some("fuzz".into()),
        net_namespace: None,
    };
    let name = Path::new("/nonexistent/rvs-fuzz/keepalived.conf");
    let (config, report) = parse_bytes_with(data, name, &options);
    let _ = report.to_string();
    let lowered = lower(&config);
    let _ = dump::service_views(&lowered);
    let _ = dump::render(&lowered, "");
    for s in &lowered.services {
        encode_command(&Command::AddService(s.config.clone())).expect("service encodes");
    }
}
