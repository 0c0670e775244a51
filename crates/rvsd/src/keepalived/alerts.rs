//! keepalived's `smtp_alert` for health checkers: a mail when a checker of a real server goes
//! down or comes back, worded as keepalived words it, so filters written for keepalived's
//! alerts keep working.
//!
//! Whether a real server alerts: its own `smtp_alert`, else its virtual server's, else
//! `global_defs`' `smtp_alert_checker`, else `smtp_alert`, else not. Every checker transition
//! is mailed unless `no_checker_emails` is set, which keeps only those that change the real
//! server's state.

use std::net::{IpAddr, SocketAddr};

use rvs_api::ServiceId;
use rvs_keepalived::model::GlobalDefs;

use super::smtp::{self, MailSettings};

/// The alert settings of one configuration.
#[derive(Debug, Clone, Default)]
pub struct CheckerAlerts {
    mail: Option<MailSettings>,
    router_id: String,
    default_on: bool,
    no_checker_emails: bool,
}

/// One checker's transition, as the alert needs it.
pub struct Transition<'a> {
    /// The service of the real server.
    pub service: ServiceId,
    /// The real server.
    pub dest: SocketAddr,
    /// keepalived's block name of the checker (`TCP_CHECK`, `HTTP_GET`, ...).
    pub kind: &'a str,
    /// The checker's new state.
    pub checker_up: bool,
    /// The real server's state before (all its checkers up).
    pub alive_before: bool,
    /// The real server's state after (all its checkers up).
    pub alive_after: bool,
    /// What the checker reported.
    pub detail: &'a str,
}

impl CheckerAlerts {
    /// The settings of `global_defs`.
    pub fn of(g: &GlobalDefs) -> CheckerAlerts {
        let router_id = smtp::router_id(g);
        CheckerAlerts {
            mail: MailSettings::from_global(g, &router_id),
            router_id,
            default_on: g.smtp_alert_checker.or(g.smtp_alert).unwrap_or(false),
            no_checker_emails: g.no_checker_emails,
        }
    }

    /// The subject and body to mail for `t` of a real server whose resolved `smtp_alert` is
    /// `server_flag` (its own or its virtual server's), or `None` when nothing is sent.
    pub fn message(
        &self,
        server_flag: Option<bool>,
        t: &Transition<'_>,
    ) -> Option<(String, String)> {
        if !server_flag.unwrap_or(self.default_on) {
            return None;
        }
        if self.no_checker_emails && t.alive_before == t.alive_after {
            return None;
        }
        let subject = format!(
            "[{}] Realserver {} of virtual server {} - {}",
            self.router_id,
            trio(t.dest.ip(), t.service, t.dest.port()),
            virtual_server(t.service),
            if t.alive_after { "UP" } else { "DOWN" }
        );
        Some((subject, body(t.kind, t.checker_up, t.detail)))
    }

    /// Mails `t` in the background when [`CheckerAlerts::message`] says so and `global_defs`
    /// names an smtp_server and recipients.
    pub fn send(&self, server_flag: Option<bool>, t: &Transition<'_>) {
        let (Some(mail), Some((subject, body))) = (&self.mail, self.message(server_flag, t)) else {
            return;
        };
        smtp::send_in_background(mail, subject, body);
    }
}

/// keepalived's `[ADDR]:proto:PORT`.
fn trio(addr: IpAddr, service: ServiceId, port: u16) -> String {
    let proto = match service {
        ServiceId::Udp { .. } => "udp",
        ServiceId::Sctp { .. } => "sctp",
        ServiceId::Tcp { .. } | ServiceId::Fwmark { .. } => "tcp",
    };
    format!("[{addr}]:{proto}:{port}")
}

/// keepalived's name of a virtual server: its trio, or `FWM n`.
fn virtual_server(service: ServiceId) -> String {
    match service {
        ServiceId::Tcp { addr, port }
        | ServiceId::Udp { addr, port }
        | ServiceId::Sctp { addr, port } => trio(addr, service, port),
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// The body keepalived's checkers write: `=> TCP CHECK failed on service <=` and the like;
/// HTTP_GET/SSL_GET add what failed.
fn body(kind: &str, up: bool, detail: &str) -> String {
    let outcome = if up { "succeed" } else { "failed" };
    match kind {
        "HTTP_GET" | "SSL_GET" if !up => format!("=> CHECK failed on service : {detail} <="),
        "HTTP_GET" | "SSL_GET" => "=> CHECK succeed on service <=".to_owned(),
        _ => {
            let name = kind.strip_suffix("_CHECK").unwrap_or(kind);
            format!("=> {name} CHECK {outcome} on service <=")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(default_on: bool, no_checker_emails: bool) -> CheckerAlerts {
        CheckerAlerts {
            mail: None,
            router_id: "LVS_1".into(),
            default_on,
            no_checker_emails,
        }
    }

    fn down(kind: &'static str, alive_before: bool) -> Transition<'static> {
        Transition {
            service: ServiceId::Tcp {
                addr: "192.168.1.253".parse().unwrap(),
                port: 80,
            },
            dest: "10.10.10.2:8090".parse().unwrap(),
            kind,
            checker_up: false,
            alive_before,
            alive_after: false,
            detail: "connection refused",
        }
    }

    #[test]
    fn worded_as_keepalived() {
        let (subject, body) = alerts(false, false)
            .message(Some(true), &down("TCP_CHECK", true))
            .expect("a mail");
        assert_eq!(
            subject,
            "[LVS_1] Realserver [10.10.10.2]:tcp:8090 of virtual server [192.168.1.253]:tcp:80 - DOWN"
        );
        assert_eq!(body, "=> TCP CHECK failed on service <=");
        let (_, http) = alerts(false, false)
            .message(Some(true), &down("HTTP_GET", true))
            .expect("a mail");
        assert_eq!(http, "=> CHECK failed on service : connection refused <=");
        assert_eq!(body_up("MISC_CHECK"), "=> MISC CHECK succeed on service <=");
    }

    fn body_up(kind: &str) -> String {
        body(kind, true, "")
    }

    #[test]
    fn who_alerts() {
        let t = down("TCP_CHECK", true);
        assert!(
            alerts(false, false).message(None, &t).is_none(),
            "off by default"
        );
        assert!(
            alerts(true, false).message(None, &t).is_some(),
            "global smtp_alert"
        );
        assert!(
            alerts(true, false).message(Some(false), &t).is_none(),
            "a real server's smtp_alert off wins"
        );
        // A second checker failing on a server already down: mailed unless no_checker_emails.
        let again = down("HTTP_GET", false);
        assert!(alerts(false, false).message(Some(true), &again).is_some());
        assert!(alerts(false, true).message(Some(true), &again).is_none());
        assert!(alerts(false, true).message(Some(true), &t).is_some());
    }

    #[test]
    fn fwmark_and_udp_names() {
        let mut t = down("UDP_CHECK", true);
        t.service = ServiceId::Fwmark {
            mark: 7,
            ipv6: false,
        };
        let (subject, body) = alerts(true, false).message(None, &t).expect("a mail");
        assert!(
            subject.ends_with("of virtual server FWM 7 - DOWN"),
            "{subject}"
        );
        assert_eq!(body, "=> UDP CHECK failed on service <=");
        t.service = ServiceId::Udp {
            addr: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        t.dest = "[2001:db8::2]:53".parse().unwrap();
        let (subject, _) = alerts(true, false).message(None, &t).expect("a mail");
        assert!(
            subject
                .contains("Realserver [2001:db8::2]:udp:53 of virtual server [2001:db8::1]:udp:53"),
            "{subject}"
        );
    }
}
