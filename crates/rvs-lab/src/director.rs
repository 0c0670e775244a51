//! What every lab topology with an rvsd director offers: rvsadm against that director's control
//! socket, and curl from the topology's client.

use std::path::Path;
use std::process::Output;

use crate::error::LabError;
use crate::harness;
use crate::lab::Lab;

/// A topology with a client namespace and an rvsd director serving a control socket.
pub trait Director {
    /// The namespaces and processes of the topology.
    fn lab(&self) -> &Lab;
    /// The director's control socket.
    fn socket(&self) -> &Path;

    /// Runs `rvsadm --socket <socket> args...` (from the root namespace: the socket is a file)
    /// and returns its output whatever the exit status.
    fn rvsadm(&self, args: &[&str]) -> Result<Output, LabError> {
        harness::rvsadm(self.socket(), args)
    }

    /// Runs rvsadm with `input` on its standard input (for `-R`); output whatever the exit status.
    fn rvsadm_stdin(&self, args: &[&str], input: &[u8]) -> Result<Output, LabError> {
        harness::rvsadm_stdin(self.socket(), args, input)
    }

    /// Runs rvsadm and returns its stdout; fails unless it succeeds.
    fn rvsadm_ok(&self, args: &[&str]) -> Result<String, LabError> {
        harness::rvsadm_ok(self.socket(), args)
    }

    /// Fetches `url` with curl from the client namespace (5 s limit) and returns the body; fails
    /// on a connection error or an HTTP error status.
    fn curl(&self, url: &str) -> Result<String, LabError> {
        harness::curl_from(self.lab(), harness::CLIENT, url)
    }
}

impl Director for crate::nat::NatTopology {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Director for crate::dr::DrTopology {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn socket(&self) -> &Path {
        &self.socket
    }
}
