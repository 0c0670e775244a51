//! Carrying out an [`Action`] against rvsd and producing ipvsadm's output and exit status.

use crate::action::{Action, ListTarget};
use crate::errors::error_text;
use crate::names::{Resolver, SystemResolver};
use crate::parse::{parse_restore_args, ParseError};
use crate::restore::restore_words;
use crate::{extension, help, render};
use rvs_api::{ApiError, Client, Command, Reply};
use std::io::BufRead;
use std::path::PathBuf;

/// Something that answers control commands: the daemon, or a fake in tests.
pub trait Control {
    /// Send one command and return the daemon's reply.
    fn call(&mut self, command: &Command) -> Result<Reply, ApiError>;
}

impl Control for Client {
    fn call(&mut self, command: &Command) -> Result<Reply, ApiError> {
        Client::call(self, command)
    }
}

/// A [`Client`] that connects on first use, so `-h`, `-v` and bad command lines need no daemon.
#[derive(Debug)]
pub struct LazyClient {
    path: PathBuf,
    client: Option<Client>,
}

impl LazyClient {
    /// A client for the socket at `path`, not yet connected.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LazyClient {
            path: path.into(),
            client: None,
        }
    }
}

impl Control for LazyClient {
    fn call(&mut self, command: &Command) -> Result<Reply, ApiError> {
        let client = match &mut self.client {
            Some(client) => client,
            None => self.client.insert(Client::connect(&self.path)?),
        };
        client.call(command)
    }
}

/// What rvsadm prints and the status it exits with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
    /// Exit status (ipvsadm's: 0 ok, 1 listing failed, 2 bad usage or no daemon, 255 refused).
    pub status: u8,
}

impl Outcome {
    fn out(text: String) -> Self {
        Outcome {
            stdout: text,
            ..Outcome::default()
        }
    }

    fn err(text: impl Into<String>, status: u8) -> Self {
        let mut stderr = text.into();
        stderr.push('\n');
        Outcome {
            stderr,
            status,
            ..Outcome::default()
        }
    }
}

/// A failed exchange: no daemon (as ipvsadm's "Can't initialize ipvs", status 2) or a broken one.
fn transport_failure(error: &ApiError) -> Outcome {
    match error {
        ApiError::Connect { path, source } => Outcome::err(
            format!(
                "Can't initialize ipvs: {source}\nAre you sure that rvsd is running and listening on {}?",
                path.display()
            ),
            2,
        ),
        other => Outcome::err(format!("rvsadm: {other}"), 1),
    }
}

fn unexpected() -> Outcome {
    Outcome::err("rvsadm: unexpected reply from rvsd", 1)
}

/// Send a query; daemon errors become ipvsadm's text with status 1 (listing failures `exit(1)`).
fn query(control: &mut dyn Control, command: &Command) -> Result<Reply, Outcome> {
    match control.call(command) {
        Ok(Reply::Error(e)) => Err(Outcome::err(error_text(command, &e), 1)),
        Ok(reply) => Ok(reply),
        Err(e) => Err(transport_failure(&e)),
    }
}

/// The payload of the one reply `command` may get, e.g. `fetch!(control, &cmd, Reply::Info)`;
/// returns from the caller with the error outcome for a refused command, a failed exchange or any
/// other reply.
macro_rules! fetch {
    ($control:expr, $command:expr, $variant:path) => {
        match query($control, $command)? {
            $variant(payload) => payload,
            _ => return Err(unexpected()),
        }
    };
}

/// Carry out `action`; `stdin` is read only by `-R`. Listings without `-n` name addresses and
/// ports through the system's resolver, as ipvsadm does.
pub fn execute(action: &Action, control: &mut dyn Control, stdin: &mut dyn BufRead) -> Outcome {
    execute_with(action, control, stdin, &SystemResolver)
}

/// [`execute`] with the names of `names` for listings without `-n`.
pub fn execute_with(
    action: &Action,
    control: &mut dyn Control,
    stdin: &mut dyn BufRead,
    names: &dyn Resolver,
) -> Outcome {
    match run(action, control, stdin, names) {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

fn run(
    action: &Action,
    control: &mut dyn Control,
    stdin: &mut dyn BufRead,
    names: &dyn Resolver,
) -> Result<Outcome, Outcome> {
    Ok(match action {
        Action::Help => Outcome::out(help::usage()),
        Action::Version => Outcome::out(help::version()),
        Action::Apply(command) => match control.call(command) {
            Ok(Reply::Ok) => Outcome::default(),
            // ipvsadm returns -1 from main when the kernel refuses a command.
            Ok(Reply::Error(e)) => Outcome::err(error_text(command, &e), 255),
            Ok(_) => unexpected(),
            Err(e) => transport_failure(&e),
        },
        Action::List(request) => match request.target {
            ListTarget::All => {
                let info = fetch!(control, &Command::GetInfo, Reply::Info);
                let services = fetch!(
                    control,
                    &Command::ListServices { service: None },
                    Reply::Services
                );
                Outcome::out(render::list_all(&info, &services, &request.format, names))
            }
            ListTarget::Service(id) => {
                let command = Command::ListServices { service: Some(id) };
                let services = fetch!(control, &command, Reply::Services);
                match services.iter().find(|s| s.config.id == id) {
                    Some(service) => {
                        Outcome::out(render::list_service(service, &request.format, names))
                    }
                    None => Outcome::err("No such service", 1),
                }
            }
            ListTarget::Connections => {
                // A connection table can hold millions of entries: reading and printing them is
                // background work that must not take CPU from rvsd's forwarding on this host
                // (SCHED_IDLE: it runs when nothing else wants the CPU).
                let _ = rvs_io::priority::set_current_thread_idle();
                let conns = fetch!(control, &Command::ListConnections, Reply::Connections);
                Outcome::out(render::connections(&conns, &request.format, names))
            }
            ListTarget::Timeouts => {
                let t = fetch!(control, &Command::GetTimeouts, Reply::Timeouts);
                Outcome::out(render::timeouts(&t))
            }
            ListTarget::Daemons => {
                let list = fetch!(control, &Command::ListDaemons, Reply::Daemons);
                Outcome::out(render::daemons(&list))
            }
        },
        Action::Save(format) => {
            let services = fetch!(
                control,
                &Command::ListServices { service: None },
                Reply::Services
            );
            // The classifier first, so -R has the rules before the -A -f services.
            let rules = fetch!(control, &Command::ListMarkRules, Reply::MarkRules);
            let mut text: String = rules.iter().map(extension::mark_rule_line).collect();
            text.push_str(&render::save(&services, format, names));
            Outcome::out(text)
        }
        Action::ListMarks => {
            let rules = fetch!(control, &Command::ListMarkRules, Reply::MarkRules);
            Outcome::out(rules.iter().map(extension::mark_rule_line).collect())
        }
        Action::ListPolicy => {
            let values = fetch!(control, &Command::GetPolicy, Reply::Policy);
            Outcome::out(
                values
                    .iter()
                    .map(|p| format!("{} {}\n", p.name, p.value))
                    .collect(),
            )
        }
        Action::Restore => restore(control, stdin, Vec::new()),
        Action::Health => {
            let servers = fetch!(control, &Command::GetHealth, Reply::Health);
            Outcome::out(render::health(&servers))
        }
        Action::Vrrp => {
            let list = fetch!(control, &Command::GetVrrp, Reply::Vrrp);
            Outcome::out(render::vrrp(&list))
        }
        Action::Bfd => {
            let list = fetch!(control, &Command::GetBfd, Reply::Bfd);
            Outcome::out(render::bfd(&list))
        }
        Action::Doctor => {
            let findings = fetch!(control, &Command::Doctor, Reply::Doctor);
            Outcome::out(render::doctor(&findings))
        }
        Action::Counters => {
            let counters = fetch!(control, &Command::GetCounters, Reply::Counters);
            Outcome::out(render::counters(&counters))
        }
    })
}

/// ipvsadm-restore: `-C` then `-R` from `stdin`, the clearing in the first batch with the
/// first lines, so the data plane never sees the table empty in between.
pub fn clear_and_restore(control: &mut dyn Control, stdin: &mut dyn BufRead) -> Outcome {
    restore(control, stdin, vec![Command::Clear])
}

/// Commands sent per [`Command::Batch`] by `-R` (a batch line stays far below the protocol's
/// line limit).
const RESTORE_BATCH: usize = 256;

/// `-R`: apply each line, as ipvsadm's `restore_table`. Configuration changes travel to rvsd in
/// batches (one exchange and one kernel-bypass update per batch, not per line); replies are
/// reported in line order. A line popt cannot read (an unknown option) is reported and the
/// next lines still run; a line ipvsadm `fail`s (a bad address, a missing option) stops the
/// restore with its status; a line the daemon refuses is reported and the restore goes on. The
/// exit status is that of the last line. `first` goes in the first batch ahead of the lines.
fn restore(control: &mut dyn Control, stdin: &mut dyn BufRead, first: Vec<Command>) -> Outcome {
    let mut total = Outcome::default();
    let mut batch: Vec<Command> = first;
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                if flush_batch(control, &mut batch, &mut total) {
                    total
                        .stderr
                        .push_str(&format!("rvsadm: reading stdin: {e}\n"));
                    total.status = 1;
                }
                return total;
            }
        }
        let words = restore_words(&line);
        if words.is_empty() {
            continue;
        }
        match parse_restore_args(&words) {
            Ok(Action::Apply(command)) if command.batchable() => {
                batch.push(command);
                if batch.len() >= RESTORE_BATCH && !flush_batch(control, &mut batch, &mut total) {
                    return total;
                }
            }
            Ok(action) => {
                if !flush_batch(control, &mut batch, &mut total) {
                    return total;
                }
                absorb(&mut total, execute(&action, control, stdin));
            }
            Err(e) => {
                if !flush_batch(control, &mut batch, &mut total) {
                    return total;
                }
                total.stderr.push_str(&format!("{e}\n"));
                total.status = e.exit_code() as u8;
                if !matches!(e, ParseError::BadOption { .. }) {
                    return total;
                }
            }
        }
    }
    flush_batch(control, &mut batch, &mut total);
    total
}

/// Sends the queued commands as one batch and reports each reply in order (ipvsadm's text and
/// status 255 for a refusal, as if each line had run alone). A daemon without batches gets the
/// commands one by one. Returns `false` when the exchange itself failed (no daemon): that is
/// reported and the restore stops.
fn flush_batch(control: &mut dyn Control, batch: &mut Vec<Command>, total: &mut Outcome) -> bool {
    if batch.is_empty() {
        return true;
    }
    let sent = Command::Batch(std::mem::take(batch));
    let Command::Batch(commands) = &sent else {
        return true;
    };
    let replies = match control.call(&sent) {
        Ok(Reply::Batch(replies)) if replies.len() == commands.len() => replies,
        Ok(Reply::Error(e)) if e.kind == rvs_api::ErrorKind::InvalidArgument => {
            // An older rvsd that does not know batches: one exchange per line.
            commands
                .iter()
                .map(|c| control.call(c).unwrap_or_else(|e| transport_reply(&e)))
                .collect()
        }
        Ok(_) => {
            absorb(total, unexpected());
            return false;
        }
        Err(e) => {
            absorb(total, transport_failure(&e));
            return false;
        }
    };
    for (command, reply) in commands.iter().zip(replies) {
        let step = match reply {
            Reply::Ok => Outcome::default(),
            Reply::Error(e) => Outcome::err(error_text(command, &e), 255),
            _ => unexpected(),
        };
        absorb(total, step);
    }
    true
}

/// A failed exchange during a restore, as the error reply each queued line gets.
fn transport_reply(error: &ApiError) -> Reply {
    Reply::error(rvs_api::ErrorKind::Internal, error.to_string())
}

/// Adds one step's output to the restore's, whose status becomes the step's.
fn absorb(total: &mut Outcome, step: Outcome) {
    total.stdout.push_str(&step.stdout);
    total.stderr.push_str(&step.stderr);
    total.status = step.status;
}
