//! nginx on the lab's real servers: one worker, everything (pid, logs, temp files) under the
//! lab's log directory, run in the foreground so the lab stops it at teardown.
//!
//! [`NatTopology::start_nginx_on`] gives each NAT real server an nginx on [`RS_NGINX_PORT`]:
//! `GET /` answers `hello,<RIP>`, every other path is a static file under
//! [`NatTopology::nginx_root_of`] (a test rewrites `page.html` there to change what a checker
//! sees). [`NatTopology::stop_nginx`] stops one, so health checkers see it go down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::rs_role;
use crate::{Lab, LabError, NatTopology};

/// Port nginx listens on in [`NatTopology::start_nginx_on`].
pub const RS_NGINX_PORT: u16 = 8090;

/// The `page.html` every NAT real server's nginx starts with.
pub const NGINX_PAGE: &str = "rvs lab page\n";

/// Writes an nginx configuration with `server` (the `server { }` body) for `role` under
/// `prefix` (one worker, pid, logs and temp files there, `client_max_body_size 16m`,
/// `default_type text/plain`), starts nginx in the foreground in `role`'s namespace and waits
/// (bounded) until `addr` accepts connections. Returns nginx's pid; the lab stops it at
/// teardown.
pub fn spawn_nginx(
    lab: &Lab,
    role: &str,
    prefix: &Path,
    server: &str,
    addr: SocketAddr,
) -> Result<u32, LabError> {
    let io = |what: &str, e| LabError::io(format!("{what} for nginx in {role}"), e);
    std::fs::create_dir_all(prefix).map_err(|e| io("creating the prefix", e))?;
    let p = prefix.display();
    let conf = format!(
        "user root;\n\
         worker_processes 1;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log {p}/access.log;\n\
           client_body_temp_path {p}/body;\n\
           proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fastcgi;\n\
           uwsgi_temp_path {p}/uwsgi;\n\
           scgi_temp_path {p}/scgi;\n\
           client_max_body_size 16m;\n\
           default_type text/plain;\n\
           server {{\n{server}   }}\n\
         }}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| io("writing the config", e))?;
    let conf_arg = conf_path.display().to_string();
    let prefix_arg = format!("{p}/");
    let pid = lab.spawn(
        role,
        &[
            "nginx",
            "-c",
            &conf_arg,
            "-p",
            &prefix_arg,
            "-g",
            "daemon off;",
        ],
    )?;
    lab.wait_tcp(role, addr, Duration::from_secs(10))?;
    Ok(pid)
}

impl NatTopology {
    /// Starts nginx on real server `index` (see the module docs); returns its pid for
    /// [`NatTopology::stop_nginx`]. `page.html` is written only if absent, so a restarted nginx
    /// serves what the test left there.
    pub fn start_nginx_on(&self, index: usize) -> Result<u32, LabError> {
        let Some(rip) = self.rips4.get(index) else {
            return Err(LabError::Invalid {
                what: "real server index",
                detail: index.to_string(),
            });
        };
        let role = rs_role(index);
        let root = self.nginx_root_of(index);
        std::fs::create_dir_all(&root)
            .map_err(|e| LabError::io(format!("creating {}", root.display()), e))?;
        let page = root.join("page.html");
        if !page.exists() {
            std::fs::write(&page, NGINX_PAGE)
                .map_err(|e| LabError::io(format!("writing {}", page.display()), e))?;
        }
        let server = format!(
            "     listen {RS_NGINX_PORT};\n\
                  root {};\n\
                  location = / {{ return 200 \"hello,{rip}\\n\"; }}\n",
            root.display()
        );
        let prefix = self.lab.log_dir().join(format!("nginx-nat-{role}"));
        spawn_nginx(
            &self.lab,
            &role,
            &prefix,
            &server,
            SocketAddr::new((*rip).into(), RS_NGINX_PORT),
        )
    }

    /// Stops the nginx [`NatTopology::start_nginx_on`] started (its pid).
    pub fn stop_nginx(&self, pid: u32) {
        self.lab.kill(pid);
    }

    /// The directory nginx on real server `index` serves.
    pub fn nginx_root_of(&self, index: usize) -> PathBuf {
        self.lab
            .log_dir()
            .join(format!("nginx-nat-{}", rs_role(index)))
            .join("root")
    }
}
