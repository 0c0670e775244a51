//! keepalived's configuration language below the keywords: the lines keepalived 2.2.7's
//! `read_line()` (lib/parser.c) hands to its keyword parser, with the file and line each comes
//! from.
//!
//! For every physical line (read as bytes, at most 1023 at a time as `fgets` into a 1024-byte
//! buffer does; a NUL byte ends the line): CR/LF are removed, comments are stripped
//! ([`decomment`]), then, in keepalived's order:
//! 1. a line of a multi-line definition in progress is appended to it (an empty line, or one not
//!    ending in `\`, ends it);
//! 2. `@ID rest` keeps `rest` only when ID is the config id, `@^ID rest` only when it is not;
//! 3. `$NAME=VALUE` is a definition ([`crate::defs`]);
//! 4. `~SEQ(...)`, `~SEQx(...)`, `~LST(...)` queue the rest of the line for replication
//!    ([`crate::seq`]); another line starting with `~` is passed on untouched;
//! 5. `$NAME` / `${NAME}` are substituted, the result is decommented again (so `${_HASH}` starts
//!    a comment), and steps 2-5 repeat while the line starts with `@` or still has a `$`;
//! 6. `include` / `includer` / `includem` / `includew` / `includeb` / `includea` PATTERN reads the
//!    files PATTERN matches (after substitution) in its place;
//! 7. the line is cut before its first `{` or `}` outside quotes, or after a leading one; the rest
//!    is read next as a line of its own (and goes through steps 2-7 again).
//!
//! keepalived reads a configuration twice: the parent process reads the files and writes a copy
//! (each line decommented once, include lines left blank, `# FILE` before and `!` after each
//! included file), and the checker and VRRP processes, which build the virtual servers and VRRP
//! instances, read that copy. [`child_reader`] does the same two passes ([`Pass`]), so what
//! comes out is what those processes see: comments are stripped twice (`\#`, a `#` after the
//! first pass, starts a comment), a comment-only line (empty in the copy) ends a multi-line
//! definition, and a file included from a line that is not itself an `include` line (`@ID
//! include ...`, `$NAME`, `~SEQ`) is read twice, once by the child and once as inlined by the
//! parent. A file reached by an `include` line is inlined in the copy and read from there;
//! problems opening it are reported by the parent pass.
//!
//! Not reproduced: keepalived 2.2.7 aborts ("double free or corruption") on `@ID` text produced
//! by a substitution (`$C=@main x` then `$C`); here that works as the manual describes. In a file re-read by a
//! child, keepalived takes lines starting with `#` or `!` for copy markers; here they are
//! comments.
//!
//! Unlike keepalived, expansions are bounded: a line whose substitutions never end, or a
//! configuration expanding to more than [`MAX_EXPANDED_LINES`] lines or [`MAX_EXPANDED_BYTES`]
//! bytes, is an error instead of a hang.

use crate::defs::{at, BuiltinEnv, Cursor, Defs, Replaced, Rng, MAXBUF, MAX_DEFINITION};
use crate::diag::{Report, Span};
use crate::glob;
use crate::lexer::{decomment, is_blank, is_white};
use crate::seq::{parse_lst, parse_seq, Seq};
use std::collections::{HashSet, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How many files deep includes may nest (the top-level file is depth 1).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The most lines `~SEQ`, `~LST`, multi-line definitions and the rest of lines after a brace may
/// produce in one configuration.
pub const MAX_EXPANDED_LINES: usize = 1 << 21;

/// The most bytes those lines may have together.
pub const MAX_EXPANDED_BYTES: usize = 64 << 20;

/// How many multi-line expansions may be suspended inside one another.
const MAX_MULTILINE_NESTING: usize = 4096;

/// How many times one line may go through substitution again.
const MAX_RECHECKS: usize = 1000;

/// What the configuration language depends on besides the files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LangOptions {
    /// keepalived's config id (`-i`): what `@ID` lines are matched against and `${_INSTANCE}`.
    pub config_id: Option<Vec<u8>>,
}

/// One line for the keyword parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// Where it was read (the line keepalived would report).
    pub span: Span,
    /// Its text: a lone `{` or `}`, or text without braces outside quotes.
    pub text: Vec<u8>,
}

/// The include variants and the checks each adds (keepalived's `include_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checks {
    /// Unreadable files, directories and executables are errors.
    read: bool,
    /// A plain path that does not exist is an error.
    matches: bool,
    /// A wildcard that matches nothing is an error.
    wildcard: bool,
    /// Every `{a,b}` alternative must exist.
    brace: bool,
}

impl Checks {
    const NONE: Checks = Checks {
        read: false,
        matches: false,
        wildcard: false,
        brace: false,
    };
}

struct OpenFile {
    /// Opened by a `# NAME` marker of the copy: reads from the copy below it.
    pseudo: bool,
    /// The copy the parent pass wrote (its `#` and `!` lines are markers).
    is_copy: bool,
    path: PathBuf,
    canonical: PathBuf,
    data: Vec<u8>,
    pos: usize,
    line: u32,
    pwd: Vec<u8>,
}

/// One `include` (or the top-level file): the files its pattern matched, and the one being read.
struct Glob {
    keyword: String,
    checks: Checks,
    pending: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    /// The include line (absent for the top-level file).
    span: Option<Span>,
}

/// The line reader: keepalived's `read_line()` state.
pub struct Reader<'r> {
    report: &'r mut Report,
    files: &'r mut Vec<PathBuf>,
    stack: Vec<Glob>,
    defs: Defs,
    seqs: Vec<Seq>,
    next: Option<Cursor>,
    residue: Option<Vec<u8>>,
    defining: Option<usize>,
    config_id: Option<Vec<u8>>,
    rng: Rng,
    expanded: usize,
    expanded_bytes: usize,
    quote_reported: HashSet<Span>,
    /// The span of the last line read.
    last_span: Option<Span>,
    /// The copy being written (parent pass).
    copy: Option<Vec<u8>>,
}

/// Which of keepalived's two reads a [`Reader`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The parent process: reads the files and writes the copy.
    Parent,
    /// A child process (checker, VRRP): reads the copy the parent wrote.
    Child,
}

fn pwd_of(path: &Path) -> Vec<u8> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let abs = std::fs::canonicalize(&dir)
        .or_else(|_| std::env::current_dir().map(|c| c.join(&dir)))
        .unwrap_or(dir);
    abs.as_os_str().as_bytes().to_vec()
}

fn open(path: &Path, data: Vec<u8>) -> OpenFile {
    OpenFile {
        pseudo: false,
        is_copy: false,
        canonical: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        pwd: pwd_of(path),
        path: path.to_path_buf(),
        data,
        pos: 0,
        line: 0,
    }
}

/// Removes `.` and `name/..` pairs lexically so diagnostics show plain paths.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

impl<'r> Reader<'r> {
    /// A reader of `text` as the file `name`.
    pub fn new(
        name: &Path,
        text: Vec<u8>,
        pass: Pass,
        options: &LangOptions,
        report: &'r mut Report,
        files: &'r mut Vec<PathBuf>,
    ) -> Self {
        if !files.iter().any(|f| f == name) {
            files.push(name.to_path_buf());
        }
        let mut top = open(name, text);
        top.is_copy = pass == Pass::Child;
        Reader {
            report,
            files,
            stack: vec![Glob {
                keyword: String::new(),
                checks: Checks::NONE,
                pending: VecDeque::new(),
                current: Some(top),
                span: None,
            }],
            defs: Defs::standard(),
            seqs: Vec::new(),
            next: None,
            residue: None,
            defining: None,
            config_id: options.config_id.clone(),
            rng: Rng::from_clock(),
            expanded: 0,
            expanded_bytes: 0,
            quote_reported: HashSet::new(),
            last_span: None,
            copy: (pass == Pass::Parent).then(Vec::new),
        }
    }

    /// Where the reader is: the file on top of the include stack and its current line.
    fn span(&self) -> Span {
        for g in self.stack.iter().rev() {
            if let Some(f) = &g.current {
                return Span::new(f.path.clone(), f.line);
            }
        }
        self.last_span
            .clone()
            .unwrap_or_else(|| Span::new(PathBuf::new(), 0))
    }

    fn error(&mut self, message: String) {
        let span = self.span();
        self.report.error(Some(&span), message);
    }

    fn pwd(&self) -> Vec<u8> {
        self.stack
            .iter()
            .rev()
            .find_map(|g| g.current.as_ref().map(|f| f.pwd.clone()))
            .unwrap_or_default()
    }

    fn unterminated_quote(&mut self) {
        let span = self.span();
        if self.quote_reported.insert(span.clone()) {
            self.report
                .error(Some(&span), "unterminated quoted string".to_string());
        }
    }

    /// Reads to the end (the parent pass) and returns the copy it wrote.
    pub fn into_copy(mut self) -> Vec<u8> {
        while self.next_line().is_some() {}
        self.copy.take().unwrap_or_default()
    }

    /// The report problems go to.
    pub fn report(&mut self) -> &mut Report {
        self.report
    }

    /// Records an unterminated quote found while splitting words of a line read at `span`.
    pub fn report_unmatched_quote(&mut self, span: &Span) {
        if self.quote_reported.insert(span.clone()) {
            self.report
                .error(Some(span), "unterminated quoted string".to_string());
        }
    }

    fn decomment(&mut self, text: &[u8]) -> Vec<u8> {
        let d = decomment(text);
        if d.unterminated {
            self.unterminated_quote();
        }
        d.text
    }

    /// Counts one produced line; `false` (after an error) once the limit is passed.
    fn count_expansion(&mut self, bytes: usize) -> bool {
        self.expanded += 1;
        self.expanded_bytes += bytes;
        if self.expanded > MAX_EXPANDED_LINES || self.expanded_bytes > MAX_EXPANDED_BYTES {
            self.error(format!(
                "~SEQ/~LST/definitions expand to more than {MAX_EXPANDED_LINES} lines or {MAX_EXPANDED_BYTES} bytes"
            ));
            self.seqs.clear();
            self.next = None;
            self.residue = None;
            self.defining = None;
            self.defs.stack.clear();
            self.defs.seq_depth = 0;
            return false;
        }
        true
    }

    /// The next raw line of the files (`fgets` semantics), or `None` at the end of everything.
    /// Returns the line without its end-of-line bytes, decommented. In the parent pass the line
    /// is also written to the copy; in the child pass the copy's file markers are followed.
    fn physical_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let top = self.stack.len().checked_sub(1)?;
            let Some(top_file) = self.stack[top].current.as_ref() else {
                self.next_file();
                continue;
            };
            // A marker-opened file reads from the stream below it (the copy).
            let stream = if top_file.pseudo {
                (0..top)
                    .rev()
                    .find(|&i| self.stack[i].current.as_ref().is_some_and(|f| !f.pseudo))
            } else {
                Some(top)
            };
            let Some(stream) = stream else {
                self.stack.clear();
                return None;
            };
            let Some(file) = self.stack[stream].current.as_mut() else {
                self.stack.pop();
                continue;
            };
            if file.pos >= file.data.len() {
                if stream == top {
                    self.next_file();
                } else {
                    self.stack.pop();
                }
                continue;
            }
            let is_copy = file.is_copy;
            let rest = &file.data[file.pos..];
            let mut n = rest.len().min(MAXBUF - 1);
            if let Some(nl) = rest[..n].iter().position(|&c| c == b'\n') {
                n = nl + 1;
            }
            let mut chunk = rest[..n].to_vec();
            file.pos += n;
            if let Some(nul) = chunk.iter().position(|&c| c == 0) {
                chunk.truncate(nul);
            }
            if is_copy && chunk.first() == Some(&b'#') {
                if at(&chunk, 1) != b'!' {
                    // "# NAME": the parent opened NAME here (keepalived drops the last byte).
                    chunk.pop();
                    let name = chunk.get(2..).unwrap_or_default();
                    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name));
                    let mut f = open(&path, Vec::new());
                    f.pseudo = true;
                    self.stack.push(Glob {
                        keyword: String::new(),
                        checks: Checks::NONE,
                        pending: VecDeque::new(),
                        current: Some(f),
                        span: None,
                    });
                }
                continue;
            }
            if is_copy && chunk.first() == Some(&b'!') {
                // The parent finished a file here.
                if self.stack.len() > 1 {
                    self.stack.pop();
                } else {
                    self.stack.clear();
                    return None;
                }
                continue;
            }
            if chunk.last() == Some(&b'\n') {
                if let Some(f) = self.stack[top].current.as_mut() {
                    f.line = f.line.saturating_add(1);
                }
            }
            while matches!(chunk.last(), Some(b'\n' | b'\r')) {
                chunk.pop();
            }
            if chunk.is_empty() {
                if let Some(idx) = self.defining.take() {
                    if let Some(d) = self.defs.defs.get_mut(idx) {
                        if d.value.is_empty() {
                            d.multiline = false;
                        }
                    }
                }
                self.write_copy(b"");
                continue;
            }
            let text = self.decomment(&chunk);
            if is_include(&text) {
                self.write_copy(b"");
            } else {
                self.write_copy(&text);
            }
            if !text.is_empty() {
                return Some(text);
            }
        }
    }

    /// Appends a line to the copy (parent pass only).
    fn write_copy(&mut self, line: &[u8]) {
        if let Some(copy) = self.copy.as_mut() {
            copy.extend_from_slice(line);
            copy.push(b'\n');
        }
    }

    /// keepalived's `get_next_file()`: the next file of the current include, or back to the
    /// including file.
    fn next_file(&mut self) {
        let Some(glob) = self.stack.last_mut() else {
            return;
        };
        if let Some(f) = glob.current.take() {
            self.last_span = Some(Span::new(f.path, f.line));
            self.write_copy(b"!");
        }
        if !self.open_next() {
            self.stack.pop();
        }
    }

    /// keepalived's `open_conf_file()`: opens the next readable match of the top include.
    fn open_next(&mut self) -> bool {
        loop {
            let Some(glob) = self.stack.last_mut() else {
                return false;
            };
            let Some(path) = glob.pending.pop_front() else {
                return false;
            };
            let keyword = glob.keyword.clone();
            let checks = glob.checks;
            let span = glob.span.clone();
            let problem = |me: &mut Self, is_error: bool, message: String| {
                let at = span.clone().unwrap_or_else(|| me.span());
                if is_error {
                    me.report.error(Some(&at), message);
                } else {
                    me.report.warn(&at, message);
                }
            };
            let files_deep = self.stack.iter().filter(|g| g.span.is_some()).count() + 1;
            if files_deep > MAX_INCLUDE_DEPTH {
                problem(
                    self,
                    true,
                    format!(
                        "{keyword}: '{}': includes nested more than {MAX_INCLUDE_DEPTH} deep",
                        path.display()
                    ),
                );
                continue;
            }
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let cycle = self
                .stack
                .iter()
                .filter_map(|g| g.current.as_ref())
                .any(|f| f.canonical == canonical);
            if cycle {
                problem(
                    self,
                    true,
                    format!("{keyword}: '{}' includes itself", path.display()),
                );
                continue;
            }
            let meta = std::fs::metadata(&path);
            if let Ok(m) = &meta {
                use std::os::unix::fs::PermissionsExt;
                if m.is_dir() {
                    problem(
                        self,
                        checks.read,
                        format!("{keyword}: '{}' is a directory - skipping", path.display()),
                    );
                    continue;
                }
                if !m.is_file() || m.permissions().mode() & 0o111 != 0 {
                    problem(
                        self,
                        checks.read,
                        format!(
                            "{keyword}: '{}' is not a regular non-executable file - skipping",
                            path.display()
                        ),
                    );
                    continue;
                }
            }
            let data = match meta.and_then(|_| std::fs::read(&path)) {
                Ok(d) => d,
                // keepalived only logs "Config files missing" for a named file that is not
                // there (its -t passes, `include` and `includer` alike) unless the variant
                // insists on a match (`includem`); an unreadable one is an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !checks.matches => {
                    problem(
                        self,
                        false,
                        format!("{keyword}: Config files missing '{}'", path.display()),
                    );
                    continue;
                }
                Err(e) => {
                    problem(
                        self,
                        true,
                        format!("{keyword}: cannot read '{}': {e}", path.display()),
                    );
                    continue;
                }
            };
            if !self.files.contains(&path) {
                self.files.push(path.clone());
            }
            let mut marker = b"# ".to_vec();
            marker.extend_from_slice(path.as_os_str().as_bytes());
            self.write_copy(&marker);
            if let Some(glob) = self.stack.last_mut() {
                glob.current = Some(open(&path, data));
            }
            return true;
        }
    }

    /// keepalived's `check_include()`: if `buf` is an include line, opens what it names.
    fn check_include(&mut self, buf: &[u8]) -> bool {
        if !is_include(buf) {
            return false;
        }
        let (keyword_len, checks) = if is_white(buf[7]) {
            (7, Checks::NONE)
        } else if is_white(at(buf, 8)) && b"rmwba".contains(&buf[7]) {
            let read = true;
            let c = match buf[7] {
                b'r' => Checks {
                    read,
                    ..Checks::NONE
                },
                b'm' => Checks {
                    read,
                    matches: true,
                    ..Checks::NONE
                },
                b'w' => Checks {
                    read,
                    matches: true,
                    wildcard: true,
                    brace: false,
                },
                b'b' => Checks {
                    read,
                    brace: true,
                    ..Checks::NONE
                },
                _ => Checks {
                    read,
                    matches: true,
                    wildcard: true,
                    brace: true,
                },
            };
            (8, c)
        } else {
            return false;
        };
        let keyword = String::from_utf8_lossy(&buf[..keyword_len]).into_owned();
        let mut p = keyword_len + 1;
        while is_blank(at(buf, p)) {
            p += 1;
        }
        let name = &buf[p.min(buf.len())..];
        let span = self.span();
        if name.is_empty() {
            self.report
                .error(Some(&span), format!("{keyword}: expected a file name"));
            return true;
        }
        let name_path = Path::new(std::ffi::OsStr::from_bytes(name));
        let base = span.file.parent().unwrap_or(Path::new(""));
        let pattern = normalize(&base.join(name_path));
        let expansion = glob::expand_include(&pattern);
        let shown = pattern.display().to_string();
        if expansion.missing_alternatives && !expansion.paths.is_empty() {
            let message = format!("{keyword}: some files of '{shown}' are missing");
            if checks.brace {
                self.report.error(Some(&span), message);
                return true;
            }
            self.report.warn(&span, message);
        }
        if expansion.paths.is_empty() {
            if !expansion.magic {
                // keepalived only logs "Config files missing" for a plain include and runs
                // (its -t passes): a warning, so rvsd runs the same file; `includem` insists.
                let e = std::fs::metadata(&pattern)
                    .err()
                    .map_or_else(|| "not found".to_string(), |e| e.to_string());
                let message = format!("{keyword}: Config files missing '{shown}' ({e})");
                if checks.matches {
                    self.report.error(Some(&span), message);
                } else {
                    self.report.warn(&span, message);
                }
            } else if checks.wildcard || (checks.brace && expansion.missing_alternatives) {
                self.report
                    .error(Some(&span), format!("{keyword}: '{shown}' matches no file"));
            } else {
                self.report
                    .warn(&span, format!("{keyword}: '{shown}' matches no file"));
            }
            return true;
        }
        self.stack.push(Glob {
            keyword,
            checks,
            pending: expansion.paths.into(),
            current: None,
            span: Some(span),
        });
        if !self.open_next() {
            self.stack.pop();
        }
        true
    }

    /// The next line for the keyword parser, or `None` at the end of the configuration.
    pub fn next_line(&mut self) -> Option<SourceLine> {
        loop {
            let mut buf = if let Some(r) = self.residue.take() {
                // Substitution can make the rest of a line produce more rest forever.
                if !self.count_expansion(r.len()) {
                    continue;
                }
                r
            } else if !self.seqs.is_empty() && self.seqs.len() > self.defs.seq_depth {
                let Some(seq) = self.seqs.last_mut() else {
                    continue;
                };
                let (text, done) = seq.step(&mut self.defs);
                if done {
                    self.seqs.pop();
                }
                if !self.count_expansion(text.len()) {
                    continue;
                }
                text
            } else if let Some(cur) = self.next.take() {
                if !self.count_expansion(cur.text.len().saturating_sub(cur.pos).min(MAXBUF)) {
                    continue;
                }
                let rest = &cur.text[cur.pos.min(cur.text.len())..];
                match rest.iter().position(|&c| c == b'\n') {
                    Some(nl) => {
                        let line = rest[..nl].to_vec();
                        self.next = Some(Cursor {
                            text: cur.text.clone(),
                            pos: cur.pos + nl + 1,
                        });
                        line
                    }
                    None => {
                        let line = rest.to_vec();
                        match self.defs.stack.pop() {
                            Some((c, depth)) => {
                                self.next = Some(c);
                                self.defs.seq_depth = depth;
                            }
                            None => self.defs.seq_depth = 0,
                        }
                        line
                    }
                }
            } else {
                self.physical_line()?
            };

            if let Some(idx) = self.defining {
                let mut len = buf.len();
                if buf.last() == Some(&b'\\') {
                    len -= 1;
                    while len >= 1 && is_blank(buf[len - 1]) {
                        len -= 1;
                    }
                    buf.truncate(len);
                    buf.push(b'\n');
                    len += 1;
                } else {
                    self.defining = None;
                    if let Some(d) = self.defs.defs.get_mut(idx) {
                        if d.value.is_empty() {
                            d.multiline = false;
                        }
                    }
                }
                if (len >= 2 || (len > 0 && self.defining.is_none()))
                    && !self.defs.append(idx, &buf[..len])
                {
                    self.error(format!(
                        "multi-line definition longer than {MAX_DEFINITION} bytes"
                    ));
                    self.defining = None;
                }
                continue;
            }
            if buf.is_empty() {
                continue;
            }
            let mut rechecks = 0;
            loop {
                let mut recheck = false;
                if at(&buf, 0) == b'@' {
                    let (rev, ofs) = if at(&buf, 1) == b'^' {
                        (true, 2)
                    } else {
                        (false, 1)
                    };
                    let Some(sp) = buf[ofs.min(buf.len())..]
                        .iter()
                        .position(|&c| is_blank(c))
                        .map(|i| ofs + i)
                    else {
                        buf.clear();
                        break;
                    };
                    let matches = self
                        .config_id
                        .as_deref()
                        .is_some_and(|id| &buf[ofs..sp] == id);
                    if matches == rev {
                        buf.clear();
                        break;
                    }
                    let mut start = sp;
                    while is_blank(at(&buf, start)) {
                        start += 1;
                    }
                    buf.drain(..start);
                }
                if at(&buf, 0) == b'$' {
                    if let Some(idx) = self.defs.check_definition(&buf) {
                        if self.defs.defs[idx].multiline {
                            self.defining = Some(idx);
                        }
                        buf.clear();
                        break;
                    }
                }
                if buf.starts_with(b"~SEQ") || buf.starts_with(b"~LST") {
                    let shown = String::from_utf8_lossy(&buf).into_owned();
                    let seq_count = self.seqs.len();
                    let pwd = self.pwd();
                    let instance = self.config_id.clone().unwrap_or_default();
                    let mut env = BuiltinEnv {
                        pwd: &pwd,
                        instance: &instance,
                        rng: &mut self.rng,
                    };
                    let (what, parsed) = if buf[1] == b'S' {
                        ("SEQ", parse_seq(&buf, &mut self.defs, seq_count, &mut env))
                    } else {
                        ("LST", parse_lst(&buf))
                    };
                    match parsed {
                        Ok(seq) => self.seqs.push(seq),
                        Err(specific) => {
                            if let Some(m) = specific {
                                self.error(m);
                            }
                            self.error(format!("Invalid ~{what} specification '{shown}'"));
                        }
                    }
                    buf.clear();
                    break;
                }
                if at(&buf, 0) == b'~' {
                    break;
                }
                if buf.contains(&b'$') {
                    let seq_count = self.seqs.len();
                    let pwd = self.pwd();
                    let instance = self.config_id.clone().unwrap_or_default();
                    let mut env = BuiltinEnv {
                        pwd: &pwd,
                        instance: &instance,
                        rng: &mut self.rng,
                    };
                    let mut next = self.next.take();
                    let r = self
                        .defs
                        .replace(&mut buf, MAXBUF, &mut next, seq_count, &mut env);
                    self.next = next;
                    if self.defs.stack.len() > MAX_MULTILINE_NESTING {
                        self.error("multi-line definitions nested too deep".to_string());
                        self.defs.stack.clear();
                        self.next = None;
                        buf.clear();
                        break;
                    }
                    match r {
                        Replaced::Nothing => break,
                        Replaced::TooLong => {
                            self.report.warn(
                                &self.span(),
                                format!(
                                    "Parameter substitution on line '{}' would exceed maximum line length",
                                    String::from_utf8_lossy(&buf)
                                ),
                            );
                            break;
                        }
                        Replaced::Runaway => {
                            self.error(format!(
                                "parameter substitution on line '{}' does not terminate",
                                String::from_utf8_lossy(&buf)
                            ));
                            buf.clear();
                            break;
                        }
                        Replaced::Some => {}
                    }
                    buf = self.decomment(&buf);
                    if buf.is_empty() {
                        break;
                    }
                    recheck = buf[0] == b'@' || buf.contains(&b'$');
                }
                if !recheck {
                    break;
                }
                rechecks += 1;
                if rechecks > MAX_RECHECKS {
                    self.error(format!(
                        "parameter substitution on line '{}' does not terminate",
                        String::from_utf8_lossy(&buf)
                    ));
                    buf.clear();
                    break;
                }
            }
            if buf.is_empty() || self.check_include(&buf) {
                continue;
            }
            for name in undefined_references(&buf) {
                self.error(format!(
                    "${{{name}}} is not defined (keepalived keeps the text and reads its braces as a block: Unexpected '{{')"
                ));
            }
            self.split_braces(&mut buf);
            return Some(SourceLine {
                span: self.span(),
                text: buf,
            });
        }
    }

    /// keepalived's brace handling at the end of `read_line()`.
    fn split_braces(&mut self, buf: &mut Vec<u8>) {
        let mut p = Some(0usize);
        if buf[0] != b'{' && buf[0] != b'}' {
            let mut i = 0;
            p = loop {
                let Some(off) = buf[i..]
                    .iter()
                    .position(|&c| c == b'{' || c == b'}' || c == b'"')
                else {
                    break None;
                };
                let q = i + off;
                if buf[q] != b'"' {
                    break Some(q);
                }
                match buf[q + 1..].iter().position(|&c| c == b'"') {
                    Some(close) => i = q + 1 + close + 1,
                    None => break None,
                }
            };
        }
        if let Some(p) = p {
            let skip = if p == 0 {
                let mut s = 1;
                while is_blank(at(buf, s)) {
                    s += 1;
                }
                s
            } else {
                0
            };
            if p + skip < buf.len() {
                let mut rest = buf[p + skip..].to_vec();
                while rest.last().is_some_and(|&c| is_blank(c)) {
                    rest.pop();
                }
                self.residue = Some(rest);
                buf.truncate(p + skip);
            }
        }
        while buf.last().is_some_and(|&c| is_blank(c)) {
            buf.pop();
        }
    }
}

/// The names of `${NAME}` references left in `buf` outside quotes once substitution is done:
/// names with no definition. keepalived leaves them as written, so their braces open and close
/// blocks where none was meant, which it reports as errors.
fn undefined_references(buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'"' => quoted = !quoted,
            b'$' if !quoted && at(buf, i + 1) == b'{' => {
                let start = i + 2;
                let len = buf[start..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                let name = &buf[start..start + len];
                let first_ok = name
                    .first()
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
                if first_ok && buf[start + len..].contains(&b'}') {
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
                i = start + len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Reads `text` as the file `name` the way keepalived's checker and VRRP processes do: the
/// parent pass writes the copy, and the returned reader reads it.
pub fn child_reader<'r>(
    name: &Path,
    text: Vec<u8>,
    options: &LangOptions,
    report: &'r mut Report,
    files: &'r mut Vec<PathBuf>,
) -> Reader<'r> {
    let copy = Reader::new(name, text, Pass::Parent, options, report, files).into_copy();
    Reader::new(name, copy, Pass::Child, options, report, files)
}

/// Removes repeated diagnostics (the two passes report most problems twice), keeping the first.
pub fn dedup(report: &mut Report) {
    for list in [&mut report.errors, &mut report.warnings] {
        let mut seen = HashSet::new();
        list.retain(|d| seen.insert(d.to_string()));
    }
}

/// keepalived's `is_include()`: `include` or `include[rmwba]` followed by a blank.
fn is_include(buf: &[u8]) -> bool {
    buf.starts_with(b"include")
        && (is_white(at(buf, 7)) || (is_white(at(buf, 8)) && b"rmwba".contains(&at(buf, 7))))
}

/// Reads the top-level file `path` as bytes.
pub fn read_top(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, id: Option<&str>) -> (Vec<(u32, String)>, Report) {
        let mut report = Report::default();
        let mut files = Vec::new();
        let opts = LangOptions {
            config_id: id.map(|s| s.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        {
            let mut r = child_reader(
                Path::new("/nonexistent/k.conf"),
                text.as_bytes().to_vec(),
                &opts,
                &mut report,
                &mut files,
            );
            while let Some(l) = r.next_line() {
                out.push((l.span.line, String::from_utf8_lossy(&l.text).into_owned()));
            }
        }
        dedup(&mut report);
        (out, report)
    }

    fn texts(text: &str, id: Option<&str>) -> Vec<String> {
        lines(text, id).0.into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn braces_split_like_keepalived() {
        assert_eq!(texts("a b { c d }\n", None), ["a b", "{", "c d", "}"]);
        assert_eq!(texts("kG{kH}kI\n", None), ["kG", "{", "kH", "}", "kI"]);
        assert_eq!(texts("x \"{\" y\n", None), ["x \"{\" y"]);
    }

    #[test]
    fn undefined_braced_names_are_errors() {
        let errors = |t: &str| lines(t, None).1.errors.len();
        assert_eq!(errors("router_id ${NOPE}\n"), 1);
        assert_eq!(errors("$YES=1\nrouter_id ${YES}\n"), 0);
        assert_eq!(errors("router_id \"${NOPE}\"\n"), 0);
        assert_eq!(errors("router_id $NOPE\n"), 0);
        assert_eq!(undefined_references(b"a ${X1} ${_y} ${9} $Z"), ["X1", "_y"]);
    }

    #[test]
    fn conditionals() {
        let t = "@a one\n@^a two\n@b three\n@^b four\n@a\n";
        assert_eq!(texts(t, Some("a")), ["one", "four"]);
        assert_eq!(texts(t, None), ["two", "four"]);
    }

    #[test]
    fn definitions_multiline_and_sequences() {
        let t = "$M=m1 \\\n  m2 \\\n\nafter\n$M\n~SEQ(i,1,3) s$i\n~LST({A,B},{x,y},{z}) l$A.${B}\n";
        assert_eq!(
            lines(t, None).0,
            [
                (4, "after".to_string()),
                (5, "m1".into()),
                (5, "m2".into()),
                (6, "s1".into()),
                (6, "s2".into()),
                (6, "s3".into()),
                (7, "l$A.y".into()),
                (7, "l$A.".into()),
            ]
        );
    }

    #[test]
    fn hash_after_substitution_is_a_comment() {
        assert_eq!(texts("k1${_HASH}x\nk2\\#x\n", None), ["k1", "k2"]);
    }

    #[test]
    fn runaway_definitions_are_errors() {
        let (out, report) = lines("$A=$A\nx $A\n", None);
        assert!(out.is_empty());
        assert_eq!(report.errors.len(), 1, "{report}");
        let (_, report) = lines("$M=a \\\n$M\n\n$M\n", None);
        assert_eq!(report.errors.len(), 1, "{report}");
        let (_, report) = lines("~SEQ(i,1,100000000) @nowhere x\n", None);
        assert_eq!(report.errors.len(), 1, "{report}");
    }
}
