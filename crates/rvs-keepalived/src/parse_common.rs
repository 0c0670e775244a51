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

/// A script keyword's command (`notify_up "/path arg"`).
pub fn script(ctx: &mut Ctx<'_>, st: &Statement) -> Option<Script> {
    ctx.no_block(st);
    let cmd = ctx.text(st, "a script")?;
    let argv = split_command(&cmd);
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
    use super::split_command;

    #[test]
    fn splits_like_keepalived() {
        assert_eq!(
            split_command("/bin/check 'a b' c"),
            ["/bin/check", "a b", "c"]
        );
        assert!(split_command("   ").is_empty());
    }
}
