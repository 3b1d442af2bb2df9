//! Errors in the data files an operator edits (agency catalog, price list): the line an error
//! is on, so a refused file can be fixed without guessing.

use std::fmt;

/// An error in a data file, with the line (1-based) it was found on when the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtLine<E> {
    /// The line, when the error belongs to one.
    pub line: Option<usize>,
    /// What is wrong.
    pub error: E,
}

impl<E> AtLine<E> {
    /// `error` at the line holding byte `offset` of `text`.
    pub fn at(text: &str, offset: usize, error: E) -> Self {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        Self { line: Some(before.matches('\n').count() + 1), error }
    }

    /// `error` about the file as a whole.
    pub fn whole_file(error: E) -> Self {
        Self { line: None, error }
    }

    /// A TOML syntax or shape error, at the line the parser points to.
    pub fn toml(text: &str, e: &toml::de::Error, wrap: impl FnOnce(String) -> E) -> Self {
        // The parser's own message repeats the line with a caret; the message alone is enough
        // beside the line number.
        let error = wrap(e.message().to_owned());
        match e.span() {
            Some(span) => Self::at(text, span.start, error),
            None => Self::whole_file(error),
        }
    }
}

impl<E: fmt::Display> fmt::Display for AtLine<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.error),
            None => self.error.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for AtLine<E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a = 1\nb = 2\nc = x\n";
        assert_eq!(AtLine::at(text, 0, "e").line, Some(1));
        assert_eq!(AtLine::at(text, text.find('c').unwrap(), "e").to_string(), "line 3: e");
        let bad = toml::from_str::<toml::Table>(text).unwrap_err();
        assert_eq!(AtLine::toml(text, &bad, |m| m).line, Some(3));
        assert_eq!(AtLine::whole_file("e").to_string(), "e");
    }
}
