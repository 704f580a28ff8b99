//! Which topics and groups a command works on: include and exclude
//! patterns, each a glob (`orders.*`, `?`, `[ab]`, from the `globset`
//! crate) or, with the prefix `re:`, a regular expression that must match
//! the whole name (`re:orders\.(eu|us)\..*`, from `--topic-regex`).
//!
//! Patterns are compiled once per command ([`NameFilter::new`]); matching a
//! name is then one pass over each set, whatever the number of patterns.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::RegexSet;

use crate::error::{Error, Result};

/// The prefix that makes a pattern a regular expression.
pub const REGEX_PREFIX: &str = "re:";

/// One side (include or exclude) of a selection.
#[derive(Debug, Clone)]
struct PatternSet {
    globs: GlobSet,
    regexes: RegexSet,
}

impl PatternSet {
    fn new(what: &'static str, patterns: &[String]) -> Result<PatternSet> {
        let mut globs = GlobSetBuilder::new();
        let mut regexes = Vec::new();
        for p in patterns {
            if let Some(r) = p.strip_prefix(REGEX_PREFIX) {
                regexes.push(format!("^(?:{r})$"));
            } else {
                let g = GlobBuilder::new(p)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::bad_value(what, p, e.kind()))?;
                globs.add(g);
            }
        }
        let bad = |e: &dyn std::fmt::Display| Error::bad_value(what, patterns.join(" "), e);
        Ok(PatternSet {
            globs: globs.build().map_err(|e| bad(&e))?,
            regexes: RegexSet::new(&regexes).map_err(|e| bad(&e))?,
        })
    }

    fn is_empty(&self) -> bool {
        self.globs.is_empty() && self.regexes.is_empty()
    }

    fn matches(&self, name: &str) -> bool {
        self.globs.is_match(name) || self.regexes.is_match(name)
    }
}

/// Include patterns (everything when there are none) minus exclude
/// patterns.
#[derive(Debug, Clone)]
pub struct NameFilter {
    include: PatternSet,
    exclude: PatternSet,
}

impl NameFilter {
    /// Compiles the patterns; `what` ("topic pattern", "group pattern") names them in
    /// errors.
    ///
    /// # Errors
    /// A malformed glob or regular expression, named.
    pub fn new(what: &'static str, include: &[String], exclude: &[String]) -> Result<NameFilter> {
        Ok(NameFilter {
            include: PatternSet::new(what, include)?,
            exclude: PatternSet::new(what, exclude)?,
        })
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.matches(name)) && !self.exclude.matches(name)
    }
}

/// Whether a pattern names exactly one thing (no glob metacharacter, not a
/// regular expression): a named topic that does not exist is an error.
pub fn is_literal(pattern: &str) -> bool {
    !pattern.starts_with(REGEX_PREFIX) && !pattern.contains(['*', '?', '[', '{', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: &[&str], exclude: &[&str]) -> NameFilter {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        NameFilter::new("topic pattern", &v(include), &v(exclude)).expect("valid patterns")
    }

    #[test]
    fn globs_and_regexes_select_whole_names() {
        assert!(sel(&[], &[]).matches("orders"));
        assert!(sel(&["ord*"], &[]).matches("orders"));
        assert!(sel(&["*ers"], &[]).matches("orders"));
        assert!(sel(&["o?ders"], &[]).matches("orders"));
        assert!(!sel(&["o?ders"], &[]).matches("oders"));
        assert!(sel(&["a*b*c"], &[]).matches("axxbyyc"));
        assert!(!sel(&["a*b*c"], &[]).matches("axxbyy"));
        assert!(sel(&["orders.{eu,us}"], &[]).matches("orders.eu"));
        assert!(!sel(&[], &["x"]).matches("x"));
        assert!(!sel(&["y*"], &[]).matches("x"));
        // A regular expression matches the whole name, not a part of it.
        let r = sel(&[r"re:orders\.(eu|us)\.\d+"], &["re:.*\\.7"]);
        assert!(r.matches("orders.eu.12"));
        assert!(!r.matches("orders.eu.12-dlq"), "anchored at the end");
        assert!(!r.matches("x-orders.eu.12"), "anchored at the start");
        assert!(!r.matches("orders.us.7"), "excluded");
        // Globs and regexes mix.
        assert!(sel(&["pay*", "re:ord.*"], &[]).matches("payments"));
    }

    #[test]
    fn malformed_patterns_are_named() {
        let e = NameFilter::new("topic pattern", &["re:(".into()], &[]).expect_err("bad regex");
        assert!(e.to_string().contains("topic pattern"), "{e}");
        let e = NameFilter::new("group pattern", &["a[".into()], &[]).expect_err("bad glob");
        assert!(e.to_string().contains("group pattern \"a[\""), "{e}");
        assert!(is_literal("orders") && !is_literal("ord*") && !is_literal("re:orders"));
    }
}
