//! Helpers shared by the block parsers.

use crate::model::Script;
use crate::tree::Statement;
use crate::values::Ctx;

/// Splits a command line as keepalived splits script strings: on whitespace, with `'...'` and
/// `"..."` grouping words.
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A script keyword's argv as keepalived builds it (lib/notify.c `set_script_params_array`)
/// from the keyword's arguments `args` (as the lexer split them, `"..."` already one word):
/// the first word, `'...'` grouping too, split again into program and arguments. Words after
/// the first are not used, so a command with arguments must be quoted (`"/path arg"`,
/// `'killall -0 x'`).
pub fn script_argv(args: &[String]) -> Vec<String> {
    let Some(first) = args.first() else {
        return Vec::new();
    };
    if !first.starts_with('\'') {
        return split_command(first);
    }
    // The lexer does not group single quotes: take words up to the closing one.
    let end = args
        .iter()
        .enumerate()
        .position(|(i, w)| (i > 0 || w.len() > 1) && w.ends_with('\''))
        .unwrap_or(args.len() - 1);
    split_command(&args[..=end].join(" "))
        .into_iter()
        .next()
        .map(|grouped| split_command(&grouped))
        .unwrap_or_default()
}

/// A script keyword's command (`notify_up "/path arg"`).
pub fn script(ctx: &mut Ctx<'_>, st: &Statement) -> Option<Script> {
    ctx.no_block(st);
    ctx.text(st, "a script")?;
    let argv = script_argv(&st.args);
    if argv.is_empty() {
        ctx.error(&st.span, format!("{}: expected a script", st.keyword));
        return None;
    }
    Some(Script {
        argv,
        span: st.span.clone(),
    })
}

/// The names listed in a block (`group { A B }`, `notification_email { a@b }`), one or more per
/// line.
pub fn name_list(ctx: &mut Ctx<'_>, st: &Statement) -> Vec<String> {
    let Some(body) = ctx.block(st) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in body {
        out.push(item.keyword.clone());
        out.extend(item.args.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{script_argv, split_command};

    #[test]
    fn splits_like_keepalived() {
        assert_eq!(
            split_command("/bin/check 'a b' c"),
            ["/bin/check", "a b", "c"]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn script_argv_is_the_first_word_split_again() {
        let words = |t: &str| t.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            script_argv(&words("'killall -0 haproxy'")),
            ["killall", "-0", "haproxy"]
        );
        // "/bin/chk.sh a 'b c'" reaches here as one word.
        assert_eq!(
            script_argv(&["/bin/chk.sh a 'b c'".to_string()]),
            ["/bin/chk.sh", "a", "b c"]
        );
        assert_eq!(script_argv(&words("/bin/chk.sh unquoted")), ["/bin/chk.sh"]);
    }
}
