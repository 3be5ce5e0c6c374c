//! Errors in experiment files and run specs. Each one names the file, where in it (line or the
//! `-o` argument), the key, the bad value and what is allowed, so a user can fix it without
//! reading our source.

use std::fmt;

use super::node::Origin;

/// One problem found in an experiment file.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Where the bad value was written.
    pub origin: Origin,
    /// The key, as a dotted path (`train.epochs`, `grid[1].alpha`).
    pub key: String,
    /// The bad value as written (empty when the key is missing).
    pub value: String,
    /// What is wrong.
    pub problem: String,
    /// What is allowed, or how to fix it.
    pub allowed: String,
    /// Which grid point it came from, when it came from an expanded run.
    pub context: String,
}

impl Issue {
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        problem: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Issue {
            origin: Origin::Implied,
            key: key.into(),
            value: value.into(),
            problem: problem.into(),
            allowed: allowed.into(),
            context: String::new(),
        }
    }

    pub fn at(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub fn in_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    fn render(&self, file: &str) -> String {
        let place = match &self.origin {
            Origin::File { line, column } => format!("{file}:{line}:{column}"),
            Origin::CommandLine(arg) => format!("{file} (set on the command line by `-o {arg}`)"),
            Origin::Implied => file.to_string(),
        };
        let value = if self.value.is_empty() {
            String::new()
        } else {
            format!(" = {}", self.value)
        };
        let context = if self.context.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.context)
        };
        format!(
            "{place}: `{}`{value}: {}{context}\n  allowed: {}",
            self.key, self.problem, self.allowed
        )
    }
}

/// Why an experiment file or a run spec was rejected. Every variant maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "{file}: cannot read: {source}\n  fix: check the path (experiment files live in experiments/)"
    )]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: not valid YAML: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}", render_issues(file, issues))]
    Invalid { file: String, issues: Vec<Issue> },
}

impl SpecError {
    pub fn invalid(file: &str, issue: Issue) -> Self {
        SpecError::Invalid {
            file: file.to_string(),
            issues: vec![issue],
        }
    }

    pub fn from_yaml(file: &str, err: &serde_saphyr::Error) -> Self {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        // serde-saphyr's first line is `error: line L column C: message`; keep the message.
        let first = err.to_string().lines().next().unwrap_or("").to_string();
        let message = first
            .split_once(": ")
            .map(|(_, rest)| rest)
            .unwrap_or(&first);
        let message = match message.split_once(": ") {
            Some((place, rest)) if place.starts_with("line ") => rest.to_string(),
            _ => message.to_string(),
        };
        SpecError::Syntax {
            file: file.to_string(),
            line,
            column,
            message,
        }
    }
}

/// Shows at most this many distinct problems; the rest are counted.
const MAX_SHOWN: usize = 10;

fn render_issues(file: &str, issues: &[Issue]) -> String {
    let mut out = String::new();
    for issue in issues.iter().take(MAX_SHOWN) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&issue.render(file));
    }
    if issues.len() > MAX_SHOWN {
        out.push_str(&format!(
            "\n... and {} more problems",
            issues.len() - MAX_SHOWN
        ));
    }
    out
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<spec>"))
    }
}
