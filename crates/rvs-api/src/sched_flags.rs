//! Scheduler flags ([`crate::ServiceConfig::sched_flags`]): ipvsadm's three flag bits and their
//! scheduler-specific names.

/// A flag name's bit (`flag-1`/`sh-fallback`/`mh-fallback` = 1, `flag-2`/`sh-port`/`mh-port` = 2,
/// `flag-3` = 4) and the scheduler it needs (`sh` or `mh`), or `None` for an unknown name.
pub fn flag(name: &str) -> Option<(u8, Option<&'static str>)> {
    Some(match name {
        "flag-1" => (1, None),
        "flag-2" => (2, None),
        "flag-3" => (4, None),
        "sh-fallback" => (1, Some("sh")),
        "sh-port" => (2, Some("sh")),
        "mh-fallback" => (1, Some("mh")),
        "mh-port" => (2, Some("mh")),
        _ => return None,
    })
}

/// The bits of flag names for `scheduler`, checked as ipvsadm does: an unknown name is an
/// "invalid scheduler flag", an `sh-*`/`mh-*` name with another scheduler an "incompatible" one.
/// The error is ipvsadm's message.
pub fn check<S: AsRef<str>>(
    scheduler: &str,
    names: impl IntoIterator<Item = S>,
) -> Result<u8, String> {
    let mut bits = 0;
    for name in names {
        let name = name.as_ref();
        let Some((bit, needs)) = flag(name) else {
            return Err(format!("invalid scheduler flag `{name}'"));
        };
        if needs.is_some_and(|s| s != scheduler) {
            return Err(format!("incompatible scheduler flag `{name}'"));
        }
        bits |= bit;
    }
    Ok(bits)
}

/// The flag bits of a list of names (unknown names count as 0).
pub fn bits<S: AsRef<str>>(names: &[S]) -> u8 {
    names
        .iter()
        .fold(0, |acc, n| acc | flag(n.as_ref()).map_or(0, |(bit, _)| bit))
}

/// Canonical names of `bits` for `scheduler`, in bit order (`sh-*`/`mh-*` for sh and mh).
pub fn names(scheduler: &str, bits: u8) -> Vec<String> {
    let (one, two) = match scheduler {
        "sh" => ("sh-fallback", "sh-port"),
        "mh" => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    [(1, one), (2, two), (4, "flag-3")]
        .into_iter()
        .filter(|&(bit, _)| bits & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The flags as ipvsadm's `print_sched_flags` prints them (comma-separated; for sh and mh only
/// their two named flags are shown).
pub fn display(scheduler: &str, bits: u8) -> String {
    let shown = match scheduler {
        "sh" | "mh" => bits & 3,
        _ => bits,
    };
    names(scheduler, shown).join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bits_and_checks() {
        assert_eq!(bits(&["sh-port", "flag-3", "bogus"]), 6);
        assert_eq!(names("sh", 7), ["sh-fallback", "sh-port", "flag-3"]);
        assert_eq!(names("rr", 5), ["flag-1", "flag-3"]);
        assert_eq!(display("mh", 7), "mh-fallback,mh-port");
        assert_eq!(display("wlc", 6), "flag-2,flag-3");
        assert_eq!(check("sh", ["sh-port", "flag-1"]), Ok(3));
        assert_eq!(check("rr", Vec::<String>::new()), Ok(0));
        assert_eq!(
            check("mh", ["sh-port"]),
            Err("incompatible scheduler flag `sh-port'".to_string())
        );
        assert_eq!(
            check("sh", ["flag-1", "sh-x"]),
            Err("invalid scheduler flag `sh-x'".to_string())
        );
    }
}
