//! What VRRP state changes tell the outside: keepalived's notify scripts and smtp alerts.
//!
//! keepalived.conf(5): `notify_master`, `notify_backup`, `notify_fault` and `notify_stop` run
//! as written; `notify` gets four arguments appended: `INSTANCE|GROUP`, the name, the new state
//! (`MASTER`, `BACKUP`, `FAULT`, `STOP`) and the priority.

use rvs_keepalived::vrrp::VrrpNotify;

use crate::keepalived::smtp::{self, MailSettings};

/// A VRRP state as notify scripts and alerts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyState {
    /// MASTER.
    Master,
    /// BACKUP.
    Backup,
    /// FAULT.
    Fault,
    /// STOP.
    Stop,
}

impl NotifyState {
    /// The word keepalived uses.
    pub fn word(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

/// Whose scripts these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A `vrrp_instance`.
    Instance,
    /// A `vrrp_sync_group`.
    Group,
}

/// The argument vectors to run for a transition, in keepalived's order (the state's own
/// script, then `notify`).
pub fn script_argvs(
    notify: &VrrpNotify,
    scope: Scope,
    name: &str,
    state: NotifyState,
    priority: u8,
) -> Vec<Vec<String>> {
    let specific = match state {
        NotifyState::Master => &notify.master,
        NotifyState::Backup => &notify.backup,
        NotifyState::Fault => &notify.fault,
        NotifyState::Stop => &notify.stop,
    };
    let mut out = Vec::new();
    if let Some(s) = specific {
        out.push(s.argv.clone());
    }
    if let Some(s) = &notify.any {
        let mut argv = s.argv.clone();
        argv.push(
            match scope {
                Scope::Instance => "INSTANCE",
                Scope::Group => "GROUP",
            }
            .to_string(),
        );
        argv.push(name.to_string());
        argv.push(state.word().to_string());
        argv.push(priority.to_string());
        out.push(argv);
    }
    out
}

/// Runs the notify scripts for a transition.
pub fn run_scripts(
    notify: &VrrpNotify,
    scope: Scope,
    name: &str,
    state: NotifyState,
    priority: u8,
) {
    for argv in script_argvs(notify, scope, name, state, priority) {
        crate::keepalived::notify::run(&argv, &format!("VRRP {name} {}", state.word()));
    }
}

/// keepalived's alert subject and body for a transition.
pub fn alert_text(
    router_id: &str,
    scope: Scope,
    name: &str,
    state: NotifyState,
) -> (String, String) {
    let what = match scope {
        Scope::Instance => "Instance",
        Scope::Group => "Group",
    };
    let subject = format!(
        "[{router_id}] VRRP {what} {name} - Entering {} state",
        state.word()
    );
    let body = match state {
        NotifyState::Master => format!("=> VRRP {what} is now owning VRRP VIPs <="),
        NotifyState::Backup => format!("=> VRRP {what} is nolonger owning VRRP VIPs <="),
        NotifyState::Fault => format!("=> VRRP {what} is in FAULT state <="),
        NotifyState::Stop => format!("=> VRRP {what} is stopped <="),
    };
    (subject, body)
}

/// Sends the alert for a transition when mail is configured.
pub fn alert(
    mail: Option<&MailSettings>,
    router_id: &str,
    scope: Scope,
    name: &str,
    state: NotifyState,
) {
    let Some(mail) = mail else {
        tracing::debug!(name, "smtp_alert set but no smtp_server/notification_email");
        return;
    };
    let (subject, body) = alert_text(router_id, scope, name, state);
    smtp::send_in_background(mail, subject, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_keepalived::model::Script;

    fn script(words: &[&str]) -> Option<Script> {
        Some(Script {
            argv: words.iter().map(|w| w.to_string()).collect(),
            span: rvs_keepalived::Span::new("t.conf", 1),
        })
    }

    #[test]
    fn notify_gets_type_name_state_priority() {
        let n = VrrpNotify {
            master: script(&["/bin/m.sh", "x"]),
            any: script(&["/bin/n.sh"]),
            ..VrrpNotify::default()
        };
        let v = script_argvs(&n, Scope::Instance, "VI_1", NotifyState::Master, 150);
        assert_eq!(v[0], vec!["/bin/m.sh", "x"]);
        assert_eq!(v[1], vec!["/bin/n.sh", "INSTANCE", "VI_1", "MASTER", "150"]);
        let g = script_argvs(&n, Scope::Group, "G", NotifyState::Backup, 0);
        assert_eq!(g, vec![vec!["/bin/n.sh", "GROUP", "G", "BACKUP", "0"]]);
    }

    #[test]
    fn subject_is_keepalived_like() {
        let (s, _) = alert_text("lb1", Scope::Instance, "VI_1", NotifyState::Master);
        assert_eq!(s, "[lb1] VRRP Instance VI_1 - Entering MASTER state");
    }
}
