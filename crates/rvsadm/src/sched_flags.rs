//! Scheduler flags: ipvsadm's three flag bits and their scheduler-specific names.

/// Bit value of a flag name (`flag-1`/`sh-fallback`/`mh-fallback` = 1, `flag-2`/`sh-port`/
/// `mh-port` = 2, `flag-3` = 4); 0 for an unknown name.
pub fn bit(name: &str) -> u8 {
    match name {
        "flag-1" | "sh-fallback" | "mh-fallback" => 1,
        "flag-2" | "sh-port" | "mh-port" => 2,
        "flag-3" => 4,
        _ => 0,
    }
}

/// The flag bits of a list of names.
pub fn bits<S: AsRef<str>>(names: &[S]) -> u8 {
    names.iter().fold(0, |acc, n| acc | bit(n.as_ref()))
}

/// Canonical names of `bits` for `scheduler`, in bit order (`sh-*`/`mh-*` for sh and mh).
pub fn names(scheduler: &str, bits: u8) -> Vec<String> {
    let named = |one: &str, two: &str| {
        let mut v = Vec::new();
        if bits & 1 != 0 {
            v.push(one.to_string());
        }
        if bits & 2 != 0 {
            v.push(two.to_string());
        }
        if bits & 4 != 0 {
            v.push("flag-3".to_string());
        }
        v
    };
    match scheduler {
        "sh" => named("sh-fallback", "sh-port"),
        "mh" => named("mh-fallback", "mh-port"),
        _ => named("flag-1", "flag-2"),
    }
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
