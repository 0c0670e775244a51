//! Files for packaging, generated from rvsadm's own definitions (`rvsadm
//! --generate-dist-files DIR`, hidden): the man page `rvsadm.8` (its usage text, which lists
//! every option) and bash, zsh and fish completions of every option (ipvsadm's and rvs's), for
//! `rvsadm` and its `ipvsadm` name.

use std::fmt::Write as _;
use std::path::Path;

/// Text for roff: backslashes doubled, and a line starting with `.` or `'` escaped.
fn roff_escape(line: &str) -> String {
    let escaped = line.replace('\\', "\\\\").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The man page: name, synopsis, the usage text as written, and what differs from ipvsadm.
pub fn man_page() -> String {
    let mut page = String::new();
    let _ = writeln!(
        page,
        ".TH RVSADM 8 \"\" \"rvsadm {}\" \"System Administration\"",
        env!("CARGO_PKG_VERSION")
    );
    page.push_str(".SH NAME\nrvsadm, ipvsadm \\- administer rvsd, the rvs Linux Virtual Server\n");
    page.push_str(".SH SYNOPSIS\n.B rvsadm\n.I command\n[\n.I options\n]\n");
    page.push_str(
        ".SH DESCRIPTION\nrvsadm sets up, keeps and inspects the virtual service table of\n\
         .BR rvsd (8)\nwith ipvsadm's command lines, output and save files. Installed or \
         linked as\n.BR ipvsadm ,\n.BR ipvsadm\\-save \" and \" ipvsadm\\-restore\nit \
         runs as those programs.\n.SH USAGE\n.nf\n",
    );
    for line in crate::help::usage().lines() {
        page.push_str(&roff_escape(line));
        page.push('\n');
    }
    page.push_str(".fi\n.SH SEE ALSO\n.BR rvsd (8),\n.BR ipvsadm (8)\n");
    page
}

/// The bash completion: every option word, for `rvsadm` and `ipvsadm`.
pub fn bash_completion() -> String {
    let words: Vec<String> = option_words();
    format!(
        "# bash completion for rvsadm and ipvsadm (generated)\n\
         _rvsadm() {{\n    local cur=\"${{COMP_WORDS[COMP_CWORD]}}\"\n    \
         COMPREPLY=( $(compgen -W \"{}\" -- \"$cur\") )\n}}\n\
         complete -F _rvsadm rvsadm ipvsadm\n",
        words.join(" ")
    )
}

/// The zsh completion.
pub fn zsh_completion() -> String {
    let mut out = String::from("#compdef rvsadm ipvsadm\n# generated\n_arguments \\\n");
    for w in crate::extension::FIRST_WORDS {
        let name = w.trim_start_matches('-');
        let _ = writeln!(out, "  '{w}[{name}]' \\");
    }
    for (long, short, value) in crate::args::option_names() {
        let arg = if value { ":value:" } else { "" };
        let _ = writeln!(out, "  '--{long}[{long}]{arg}' \\");
        if let Some(c) = short {
            let _ = writeln!(out, "  '-{c}[{long}]{arg}' \\");
        }
    }
    out.push_str("  '*::argument:_default'\n");
    out
}

/// The fish completion.
pub fn fish_completion() -> String {
    let mut out = String::from("# fish completion for rvsadm and ipvsadm (generated)\n");
    for program in ["rvsadm", "ipvsadm"] {
        for w in crate::extension::FIRST_WORDS {
            let _ = writeln!(
                out,
                "complete -c {program} -l {}",
                w.trim_start_matches('-')
            );
        }
        for (long, short, value) in crate::args::option_names() {
            let _ = write!(out, "complete -c {program} -l {long}");
            if let Some(c) = short {
                let _ = write!(out, " -s {c}");
            }
            if value {
                out.push_str(" -r");
            }
            out.push('\n');
        }
    }
    out
}

fn option_words() -> Vec<String> {
    let mut words: Vec<String> = crate::extension::FIRST_WORDS
        .iter()
        .map(|w| w.to_string())
        .collect();
    for (long, short, _) in crate::args::option_names() {
        words.push(format!("--{long}"));
        if let Some(c) = short {
            words.push(format!("-{c}"));
        }
    }
    words.sort();
    words.dedup();
    words
}

/// Writes the man page and the three completions into `dir`.
pub fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("rvsadm.8"), man_page())?;
    std::fs::write(dir.join("rvsadm.bash"), bash_completion())?;
    std::fs::write(dir.join("_rvsadm"), zsh_completion())?;
    std::fs::write(dir.join("rvsadm.fish"), fish_completion())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_page_cover_the_options() {
        let bash = bash_completion();
        for w in ["--add-service", "-A", "--save", "--set-policy", "--vrrp"] {
            assert!(
                bash.contains(&format!(" {w} ")) || bash.contains(&format!("\"{w} ")),
                "{w}"
            );
        }
        assert!(fish_completion().contains("complete -c ipvsadm -l add-server -s a\n"));
        assert!(zsh_completion().starts_with("#compdef rvsadm ipvsadm\n"));
        let man = man_page();
        assert!(man.starts_with(".TH RVSADM 8 "));
        assert!(man.contains("\\-\\-add\\-service"), "{man}");
        // No usage line can start a roff request.
        assert!(man
            .lines()
            .skip_while(|l| *l != ".nf")
            .skip(1)
            .take_while(|l| *l != ".fi")
            .all(|l| !l.starts_with('.') && !l.starts_with('\'')));
    }
}
