//! The house rules, checked on the source text (in the spirit of rust-analyzer's tidy test):
//!
//! - `tokio_postgres`, `deadpool` and SQL text only in `src/storage` and `src/embedded.rs`
//!   (which runs PostgreSQL's tools);
//! - actix only in `src/http`, `src/main.rs` and the composition root `src/startup.rs`;
//! - in the pure core (`src/domain`, `src/audit`): no serde derives, no clock (`SystemTime`,
//!   `Instant`, `now`), no randomness (`rand`, `OsRng`, `Uuid::new_v4`/`now_v7`), no async;
//! - no error status (`StatusCode::` of a 4xx or 5xx) named outside the catalogue of error
//!   codes, `src/http/codes.rs`: an error's status is its code's;
//! - every source file under `src/` starts with a `//!` module doc;
//! - no line of a `.rs` file under `src/` or `tests/` is longer than 100 columns.
//!
//! Each violation is reported as `file:line: rule: what`. The imports, clocks and the like are
//! looked for in code only (comments and string literals blanked); SQL is looked for in string
//! literals only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Violations allowed for now in files owned by another change in flight, each entry naming
/// the file and the rule with a comment ("owned by another change in flight; remove when
/// fixed"), e.g. `("src/storage/batch.rs", Rule::LineLength, 19)`. An entry allows at most that
/// many violations of the rule in the file (a count rather than line numbers, which move with
/// every edit); one more fails, fewer prints a reminder to lower it. Empty since the changes in
/// flight fixed theirs.
const ALLOWED: &[(&str, Rule, usize)] = &[];

const MAX_COLUMNS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    /// `tokio_postgres` or `deadpool` outside storage.
    Driver,
    /// SQL text outside storage.
    Sql,
    /// actix outside http and the composition root.
    Actix,
    /// serde derives, clocks, randomness or async in the pure core.
    PureCore,
    /// A source file under `src/` without a leading `//!` doc.
    ModuleDoc,
    /// A line over 100 columns.
    LineLength,
    /// An error status named outside the catalogue of error codes.
    Status,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Driver => "driver types only in src/storage",
            Rule::Sql => "SQL only in src/storage",
            Rule::Actix => "actix only in src/http, src/main.rs, src/startup.rs",
            Rule::PureCore => "pure core",
            Rule::ModuleDoc => "module doc",
            Rule::LineLength => "line length",
            Rule::Status => "error statuses only in src/http/codes.rs",
        })
    }
}

struct Violation {
    file: String,
    line: usize,
    rule: Rule,
    what: String,
}

#[test]
fn the_source_tree_keeps_the_house_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    for path in rust_files(&root.join("src"))
        .into_iter()
        .chain(rust_files(&root.join("tests")))
    {
        let file = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        check_file(&file, &text, &mut violations);
    }
    let mut by_key: BTreeMap<(String, Rule), Vec<&Violation>> = BTreeMap::new();
    for violation in &violations {
        by_key
            .entry((violation.file.clone(), violation.rule))
            .or_default()
            .push(violation);
    }
    let mut report = String::new();
    for ((file, rule), found) in &by_key {
        let allowed = ALLOWED
            .iter()
            .find(|(f, r, _)| f == file && r == rule)
            .map_or(0, |(_, _, count)| *count);
        if found.len() > allowed {
            for v in found {
                report.push_str(&format!("{}:{}: {}: {}\n", v.file, v.line, v.rule, v.what));
            }
            if allowed > 0 {
                report.push_str(&format!(
                    "({file}: {} violations of \"{rule}\", {allowed} allowed in ALLOWED)\n",
                    found.len()
                ));
            }
        }
    }
    for (file, rule, allowed) in ALLOWED {
        let found = by_key.get(&(file.to_string(), *rule)).map_or(0, Vec::len);
        if found < *allowed {
            eprintln!(
                "tidy: {file} has {found} violations of \"{rule}\", {allowed} allowed: \
                 lower or remove its ALLOWED entry"
            );
        }
    }
    assert!(report.is_empty(), "house rules broken:\n{report}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let mut found = Vec::new();
    let core = "//! Doc.\nuse std::time::SystemTime;\n#[derive(Debug, Serialize)]\nstruct A;\n\
                async fn f() {}\nfn g() { let _ = Uuid::now_v7(); }\n// SystemTime in a comment\n\
                const S: &str = \"Instant in a string\";\n";
    check_file("src/domain/x.rs", core, &mut found);
    let mut lines: Vec<usize> = found.iter().map(|v| v.line).collect();
    lines.sort();
    assert_eq!(
        lines,
        [2, 3, 5, 6],
        "{:?}",
        found.iter().map(|v| &v.what).collect::<Vec<_>>()
    );
    found.clear();
    let shell = "use actix_web::HttpResponse;\nfn q() -> &'static str { \"SELECT id FROM t\" }\n\
                 fn p() { let _ = \"-----BEGIN\"; }\nfn r(e: tokio_postgres::Error) {}\n";
    check_file("src/writer/x.rs", shell, &mut found);
    let rules: Vec<(usize, Rule)> = found.iter().map(|v| (v.line, v.rule)).collect();
    assert_eq!(
        rules,
        [
            (1, Rule::ModuleDoc),
            (1, Rule::Actix),
            (4, Rule::Driver),
            (2, Rule::Sql)
        ]
    );
    found.clear();
    let http = "//! Doc.\nfn f() -> StatusCode { StatusCode::CONFLICT }\n\
                fn g() -> StatusCode { StatusCode::CREATED }\n";
    check_file("src/http/x.rs", http, &mut found);
    let rules: Vec<(usize, Rule)> = found.iter().map(|v| (v.line, v.rule)).collect();
    assert_eq!(rules, [(2, Rule::Status)]);
    found.clear();
    check_file(
        "tests/x.rs",
        &format!("fn f() {{}} // {}\n", "é".repeat(100)),
        &mut found,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, Rule::LineLength);
    found.clear();
    check_file(
        "tests/x.rs",
        &format!("// {}\n", "é".repeat(97)),
        &mut found,
    );
    assert!(found.is_empty(), "columns are characters, not bytes");
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn check_file(file: &str, text: &str, out: &mut Vec<Violation>) {
    let mut push = |line: usize, rule: Rule, what: String| {
        out.push(Violation {
            file: file.to_owned(),
            line,
            rule,
            what,
        });
    };
    if file.starts_with("src/") && !text.starts_with("//!") {
        push(
            1,
            Rule::ModuleDoc,
            "the file does not start with a `//!` doc".into(),
        );
    }
    let source = Source::lex(text);
    let storage = file.starts_with("src/storage/") || file == "src/embedded.rs";
    let actix_allowed =
        file.starts_with("src/http/") || file == "src/main.rs" || file == "src/startup.rs";
    let core = file.starts_with("src/domain/") || file.starts_with("src/audit/");
    if file.starts_with("src/") {
        for (line, code) in source.code.lines().enumerate() {
            let line = line + 1;
            if !storage {
                for word in ["tokio_postgres", "deadpool", "deadpool_postgres"] {
                    if has_word(code, word) {
                        push(line, Rule::Driver, format!("`{word}`"));
                    }
                }
            }
            if !actix_allowed && (has_word(code, "actix_web") || has_prefix_word(code, "actix")) {
                push(line, Rule::Actix, "actix".into());
            }
            if file != "src/http/codes.rs" {
                if let Some(status) = error_status(code) {
                    push(line, Rule::Status, format!("`StatusCode::{status}`"));
                }
            }
            if core {
                if let Some(what) = impurity(code) {
                    push(line, Rule::PureCore, what);
                }
            }
        }
        if core {
            for (line, derive) in source.derives() {
                if has_word(&derive, "Serialize") || has_word(&derive, "Deserialize") {
                    push(line, Rule::PureCore, "a serde derive".into());
                }
            }
        }
        if !storage {
            for (line, literal) in &source.strings {
                if let Some(what) = sql_in(literal) {
                    push(*line, Rule::Sql, format!("SQL text ({what})"));
                }
            }
        }
    }
    for (line, text) in text.lines().enumerate() {
        let columns = text.chars().count();
        if columns > MAX_COLUMNS {
            push(line + 1, Rule::LineLength, format!("{columns} columns"));
        }
    }
}

/// A clock, randomness or async in a line of core code, if any.
fn impurity(code: &str) -> Option<String> {
    let words = [
        ("SystemTime", "a clock"),
        ("Instant", "a clock"),
        ("now_utc", "a clock"),
        ("now_local", "a clock"),
        ("chrono", "a clock"),
        ("rand", "randomness"),
        ("rand_core", "randomness"),
        ("OsRng", "randomness"),
        ("thread_rng", "randomness"),
        ("getrandom", "randomness"),
        ("new_v4", "randomness"),
        ("now_v7", "randomness"),
        ("async", "async"),
        ("await", "async"),
        ("tokio", "async"),
    ];
    for (word, what) in words {
        if has_word(code, word) {
            return Some(format!("{what} (`{word}`)"));
        }
    }
    if code.contains("::now(") {
        return Some("a clock (`::now()`)".into());
    }
    None
}

/// An error status named in a line of code (`StatusCode::` and anything but a success, a
/// redirection or a conversion), if any.
fn error_status(code: &str) -> Option<&str> {
    const NOT_ERRORS: &[&str] = &[
        "OK",
        "CREATED",
        "ACCEPTED",
        "NO_CONTENT",
        "PARTIAL_CONTENT",
        "MOVED_PERMANENTLY",
        "FOUND",
        "SEE_OTHER",
        "NOT_MODIFIED",
        "TEMPORARY_REDIRECT",
        "PERMANENT_REDIRECT",
        "from_u16",
    ];
    code.match_indices("StatusCode::").find_map(|(at, found)| {
        let rest = &code[at + found.len()..];
        let name = &rest[..rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len())];
        (!name.is_empty() && !NOT_ERRORS.contains(&name)).then_some(name)
    })
}

/// The SQL a string literal holds, if it looks like a statement.
fn sql_in(literal: &str) -> Option<&'static str> {
    let has = |word: &str| has_word(literal, word);
    if has("SELECT") && has("FROM") {
        return Some("SELECT … FROM");
    }
    if literal.contains("INSERT INTO") {
        return Some("INSERT INTO");
    }
    if has("UPDATE") && has("SET") {
        return Some("UPDATE … SET");
    }
    if literal.contains("DELETE FROM") {
        return Some("DELETE FROM");
    }
    for verb in ["CREATE", "DROP", "ALTER"] {
        for object in [
            "TABLE",
            "DATABASE",
            "INDEX",
            "ROLE",
            "SCHEMA",
            "EXTENSION",
            "TRIGGER",
        ] {
            if literal.contains(&format!("{verb} {object}")) {
                return Some("DDL");
            }
        }
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text` contains `word` with no identifier character on either side.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Whether `text` contains an identifier starting with `prefix` (`actix`, `actix_web`, …).
fn has_prefix_word(text: &str, prefix: &str) -> bool {
    text.match_indices(prefix)
        .any(|(at, _)| !text[..at].chars().next_back().is_some_and(is_ident))
}

/// A file split into its code (comments and string literals replaced by spaces, lines kept)
/// and its string literals (each with the line it starts on).
struct Source {
    code: String,
    strings: Vec<(usize, String)>,
}

impl Source {
    fn lex(text: &str) -> Source {
        let chars: Vec<char> = text.chars().collect();
        let mut code = String::with_capacity(text.len());
        let mut strings = Vec::new();
        let mut line = 1;
        let mut i = 0;
        // Blanks a span of the input in `code`, keeping its newlines.
        let blank = |code: &mut String, span: &[char], line: &mut usize| {
            for &c in span {
                if c == '\n' {
                    code.push('\n');
                    *line += 1;
                } else {
                    code.push(' ');
                }
            }
        };
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let prev_ident = i > 0 && is_ident(chars[i - 1]);
            if c == '/' && next == Some('/') {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                blank(&mut code, &chars[i..end], &mut line);
                i = end;
            } else if c == '/' && next == Some('*') {
                let mut depth = 0;
                let mut j = i;
                while j < chars.len() {
                    if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 2;
                    } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut code, &chars[i..j.min(chars.len())], &mut line);
                i = j;
            } else if !prev_ident && (c == 'r' || c == 'b') && raw_start(&chars[i..]).is_some() {
                let (open, hashes) = raw_start(&chars[i..]).unwrap();
                let body = i + open;
                let mut j = body;
                while j < chars.len()
                    && !(chars[j] == '"'
                        && chars[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == '#')
                            .count()
                            == hashes)
                {
                    j += 1;
                }
                let end = (j + 1 + hashes).min(chars.len());
                strings.push((line, chars[body..j.min(chars.len())].iter().collect()));
                blank(&mut code, &chars[i..end], &mut line);
                i = end;
            } else if c == '"' || (c == 'b' && next == Some('"') && !prev_ident) {
                let body = if c == 'b' { i + 2 } else { i + 1 };
                let mut j = body;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(chars.len());
                strings.push((line, chars[body..j.min(chars.len())].iter().collect()));
                blank(&mut code, &chars[i..end], &mut line);
                i = end;
            } else if c == '\'' {
                // A char literal ('x', '\n', '\u{1f600}') or a lifetime ('a).
                let end = if next == Some('\\') {
                    chars[i + 2..]
                        .iter()
                        .position(|&c| c == '\'')
                        .map(|p| i + 3 + p)
                } else if chars.get(i + 2) == Some(&'\'') {
                    Some(i + 3)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        blank(&mut code, &chars[i..end], &mut line);
                        i = end;
                    }
                    None => {
                        code.push(c);
                        i += 1;
                    }
                }
            } else {
                if c == '\n' {
                    line += 1;
                }
                code.push(c);
                i += 1;
            }
        }
        Source { code, strings }
    }

    /// The text of every `derive(…)` attribute, with the line it starts on.
    fn derives(&self) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (at, _) in self.code.match_indices("derive(") {
            if self.code[..at].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let rest = &self.code[at..];
            let end = rest.find(')').unwrap_or(rest.len());
            let line = self.code[..at].matches('\n').count() + 1;
            found.push((line, rest[..end].to_owned()));
        }
        found
    }
}

/// The length of a raw string's opening (`r"`, `r#"`, `br##"`, …) and its number of `#`.
fn raw_start(chars: &[char]) -> Option<(usize, usize)> {
    let mut i = 0;
    if chars.first() == Some(&'b') {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    (chars.get(i) == Some(&'"')).then_some((i + 1, hashes))
}
