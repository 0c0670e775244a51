//! Minimal shell-style glob expansion for `include` (`*`, `?`, `[...]`, per path component, and
//! `{a,b}` alternatives as glob(3)'s `GLOB_BRACE`, which keepalived uses).

use std::path::{Component, Path, PathBuf};

/// `true` if `s` contains glob metacharacters.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands `pattern` (an absolute or base-joined path) into the existing paths it matches, sorted
/// (glob(3) sorts too). A pattern without metacharacters is returned as is, existing or not.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !has_magic(&text) {
        return vec![pattern.to_path_buf()];
    }
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let mut next = Vec::new();
        match comp {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                if has_magic(&part) {
                    for dir in &current {
                        let read_dir = if dir.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            dir.as_path()
                        };
                        let Ok(entries) = std::fs::read_dir(read_dir) else {
                            continue;
                        };
                        let mut names: Vec<String> = entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                            .filter(|n| matches(&part, n))
                            .collect();
                        names.sort();
                        next.extend(names.into_iter().map(|n| dir.join(n)));
                    }
                } else {
                    next.extend(current.iter().map(|d| d.join(part.as_ref())));
                }
            }
            other => next.extend(current.iter().map(|d| d.join(other.as_os_str()))),
        }
        current = next;
    }
    current.retain(|p| p.exists());
    current
}

/// What an include pattern expands to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The existing paths, in glob(3)'s order: each `{...}` alternative's matches sorted, the
    /// alternatives in the order written. A pattern without wildcards or braces gives itself,
    /// existing or not.
    pub paths: Vec<PathBuf>,
    /// The pattern has wildcards or braces.
    pub magic: bool,
    /// A `{...}` alternative without wildcards names a path that does not exist.
    pub missing_alternatives: bool,
}

/// Expands the include pattern `pattern`, `{a,b}` alternatives included.
pub fn expand_include(pattern: &Path) -> Expansion {
    let text = pattern.to_string_lossy();
    let alternatives = expand_braces(&text);
    if alternatives.len() == 1 && !has_magic(&text) {
        return Expansion {
            paths: vec![pattern.to_path_buf()],
            magic: false,
            missing_alternatives: false,
        };
    }
    let mut out = Expansion {
        magic: true,
        ..Expansion::default()
    };
    for alt in alternatives {
        let p = PathBuf::from(&alt);
        if has_magic(&alt) {
            out.paths.extend(expand(&p));
        } else if p.exists() {
            out.paths.push(p);
        } else {
            out.missing_alternatives = true;
        }
    }
    out
}

/// The brace alternatives of `s`: `a{b,c}d` gives `abd`, `acd` (nested braces expand too; a
/// `{` without its `}` is literal). At most 4096 alternatives are produced.
pub fn expand_braces(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut budget = 4096usize;
    expand_into(s, "", &mut out, &mut budget);
    out
}

fn expand_into(s: &str, prefix: &str, out: &mut Vec<String>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    let bytes = s.as_bytes();
    let group = bytes.iter().position(|&c| c == b'{').and_then(|open| {
        let mut depth = 0usize;
        let mut bounds = vec![open];
        for (i, &c) in bytes.iter().enumerate().skip(open) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        bounds.push(i);
                        return Some(bounds);
                    }
                }
                b',' if depth == 1 => bounds.push(i),
                _ => {}
            }
        }
        None
    });
    let Some(bounds) = group else {
        out.push(format!("{prefix}{s}"));
        *budget -= 1;
        return;
    };
    let (open, close) = (bounds[0], bounds[bounds.len() - 1]);
    let head = format!("{prefix}{}", &s[..open]);
    let tail = &s[close + 1..];
    for w in bounds.windows(2) {
        let middle = &s[w[0] + 1..w[1]];
        expand_into(&format!("{middle}{tail}"), &head, out, budget);
    }
}

/// `true` if `name` matches the single-component glob `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| match_from(&p[1..], &n[skip..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                return n.first() == Some(&'[') && match_from(&p[1..], &n[1..]);
            };
            let Some(&c) = n.first() else {
                return false;
            };
            let class = &p[1..close];
            let (negate, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_from(&p[close + 1..], &n[1..])
        }
        Some(&lit) => n.first() == Some(&lit) && match_from(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn glob_matching() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(matches("rs?.conf", "rs1.conf"));
        assert!(matches("rs[0-9].conf", "rs7.conf"));
        assert!(!matches("rs[!0-9].conf", "rs7.conf"));
        assert!(matches("*", ""));
    }

    #[test]
    fn braces() {
        use super::expand_braces;
        assert_eq!(expand_braces("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(expand_braces("x{1,{2,3}}"), ["x1", "x2", "x3"]);
        assert_eq!(expand_braces("x{1,2"), ["x{1,2"]);
    }
}
