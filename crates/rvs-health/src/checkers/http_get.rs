//! HTTP_GET and SSL_GET: every `url` must answer with an accepted status and, when
//! given, the expected body digest.

use crate::http::{fetch, HttpRequest, TlsOptions};
use crate::result::CheckResult;
use crate::spec::{ConnectOpts, HttpSpec, StatusRange, UrlSpec};

/// keepalived's default accepted statuses when a url has no `status_code`.
const DEFAULT_STATUS: StatusRange = StatusRange { lo: 200, hi: 299 };

fn status_ok(url: &UrlSpec, code: u16) -> bool {
    if url.status.is_empty() {
        DEFAULT_STATUS.contains(code)
    } else {
        url.status.iter().any(|r| r.contains(code))
    }
}

pub(super) async fn run(conn: &ConnectOpts, spec: &HttpSpec, tls: bool) -> CheckResult {
    let scheme = if tls { "https" } else { "http" };
    if spec.urls.is_empty() {
        return CheckResult::fail("no url configured");
    }
    for url in &spec.urls {
        let vhost = url.virtualhost.clone().or_else(|| spec.virtualhost.clone());
        let req = HttpRequest {
            conn: conn.clone(),
            path: url.path.clone(),
            virtualhost: vhost.clone(),
            protocol: spec.protocol,
            tls: tls.then(|| TlsOptions {
                sni: if spec.enable_sni { vhost.clone() } else { None },
                client: spec.tls.clone(),
            }),
        };
        let what = format!("{scheme} {} {}", conn.target(), url.path);
        let resp = match fetch(&req, false).await {
            Ok(r) => r,
            Err(e) => return CheckResult::fail(format!("{what}: {e}")),
        };
        if !status_ok(url, resp.status) {
            return CheckResult::fail(format!("{what}: status {} not accepted", resp.status));
        }
        if let Some(want) = &url.digest {
            let got = resp.digest_hex();
            if !got.eq_ignore_ascii_case(want.trim()) {
                return CheckResult::fail(format!("{what}: digest {got} does not match {want}"));
            }
        }
    }
    CheckResult::pass(format!(
        "{scheme} {}: {} url(s) passed",
        conn.target(),
        spec.urls.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_status_is_2xx() {
        let url = UrlSpec::default();
        assert!(status_ok(&url, 200) && status_ok(&url, 299));
        assert!(!status_ok(&url, 301) && !status_ok(&url, 199));
        let url = UrlSpec {
            status: vec![StatusRange::single(302), StatusRange { lo: 500, hi: 503 }],
            ..UrlSpec::default()
        };
        assert!(status_ok(&url, 302) && status_ok(&url, 501));
        assert!(!status_ok(&url, 200));
    }
}
