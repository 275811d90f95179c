//! The words of a request line: splitting a line into bare, quoted and
//! `key=value` words, quoting a value so it survives as one word, and the
//! `Args` reader the request parser takes words from. Private to the
//! protocol module; [`Request`](super::Request) is its only user.

use std::fmt;
use std::str::FromStr;

use ktcpvs_core::endpoint::Endpoint;

use super::ProtocolError;

/// One word of a request line: `value`, or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) key: Option<String>,
    pub(super) value: String,
}

/// Splits a request line into words, honouring `"…"` quoting. A word is a
/// `key=value` pair when an `=` appears before any quote.
pub(super) fn split_words(line: &str) -> Result<Vec<Word>, ProtocolError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut key = None;
        let mut text = String::new();
        let mut quoted_seen = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => {
                    quoted_seen = true;
                    loop {
                        match chars.next() {
                            None => return Err(ProtocolError::Unterminated(line.to_string())),
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(e @ ('"' | '\\')) => text.push(e),
                                Some(other) => {
                                    text.push('\\');
                                    text.push(other);
                                }
                                None => return Err(ProtocolError::Unterminated(line.to_string())),
                            },
                            Some(other) => text.push(other),
                        }
                    }
                }
                '=' if key.is_none() && !quoted_seen => {
                    key = Some(std::mem::take(&mut text));
                }
                other => text.push(other),
            }
        }
        words.push(Word { key, value: text });
    }
}

/// Quotes `text` when it would not survive as a bare word.
pub(crate) fn quote_if_needed(text: &str) -> String {
    let bare = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '=');
    if bare {
        return text.to_string();
    }
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Parses the value given for `key`; a value that does not parse is
/// refused as [`ProtocolError::BadValue`] with the parser's reason.
pub(super) fn parse_value<T: FromStr>(key: &str, value: String) -> Result<T, ProtocolError>
where
    T::Err: fmt::Display,
{
    value.parse::<T>().map_err(|e| ProtocolError::BadValue {
        key: key.to_string(),
        reason: e.to_string(),
        value,
    })
}

/// The words of one request after the verb, consumed by the parser.
pub(super) struct Args {
    pub(super) verb: &'static str,
    pub(super) positional: Vec<String>,
    pub(super) pairs: Vec<(String, String)>,
}

impl Args {
    pub(super) fn new(verb: &'static str, words: Vec<Word>) -> Result<Args, ProtocolError> {
        let mut positional = Vec::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for w in words {
            match w.key {
                Some(k) => {
                    if pairs.iter().any(|(seen, _)| *seen == k) {
                        return Err(ProtocolError::Duplicate { key: k });
                    }
                    pairs.push((k, w.value));
                }
                None => positional.push(w.value),
            }
        }
        Ok(Args {
            verb,
            positional,
            pairs,
        })
    }

    pub(super) fn take(&mut self, key: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(i).1)
    }

    pub(super) fn take_parsed<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, ProtocolError>
    where
        T::Err: fmt::Display,
    {
        self.take(key).map(|v| parse_value(key, v)).transpose()
    }

    pub(super) fn require(&mut self, key: &'static str) -> Result<String, ProtocolError> {
        self.take(key).ok_or(ProtocolError::Missing {
            verb: self.verb,
            what: match key {
                "server" => "server=HOST[:PORT]",
                "pattern" => "pattern=REGEX",
                _ => "a required key",
            },
        })
    }

    pub(super) fn endpoint(&mut self, key: &'static str) -> Result<Endpoint, ProtocolError> {
        parse_value(key, self.require(key)?)
    }

    pub(super) fn name(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        if self.positional.is_empty() {
            return Err(ProtocolError::Missing {
                verb: self.verb,
                what,
            });
        }
        Ok(self.positional.remove(0))
    }

    pub(super) fn optional_name(&mut self) -> Option<String> {
        (!self.positional.is_empty()).then(|| self.positional.remove(0))
    }

    /// Refuses anything left over.
    pub(super) fn finish(self) -> Result<(), ProtocolError> {
        if let Some(word) = self.positional.into_iter().next() {
            return Err(ProtocolError::UnexpectedWord {
                verb: self.verb,
                word,
            });
        }
        if let Some((k, v)) = self.pairs.into_iter().next() {
            return Err(ProtocolError::UnexpectedWord {
                verb: self.verb,
                word: format!("{k}={v}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_whitespace_and_keys_stop_at_the_first_quote() {
        let words = split_words(r#"  verb  a=b=c "x=y" k="v w" "#).unwrap();
        let pairs: Vec<(Option<&str>, &str)> = words
            .iter()
            .map(|w| (w.key.as_deref(), w.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                (None, "verb"),
                (Some("a"), "b=c"),
                (None, "x=y"),
                (Some("k"), "v w"),
            ]
        );
        assert!(split_words(r#"k="open"#).is_err());
    }

    #[test]
    fn quoting_is_added_only_where_a_bare_word_would_not_survive() {
        for text in ["plain", "", "a b", "a=b", r#"q"uote"#, r"back\slash"] {
            let quoted = quote_if_needed(text);
            assert_eq!(quoted == text, text == "plain", "{text:?} -> {quoted}");
            let words = split_words(&quoted).unwrap();
            assert_eq!(words.len(), 1, "{quoted}");
            assert_eq!(words[0].value, text);
        }
    }

    #[test]
    fn values_that_do_not_parse_are_refused_with_key_value_and_reason() {
        assert_eq!(parse_value::<u32>("weight", "7".into()), Ok(7));
        match parse_value::<u32>("weight", "x".into()) {
            Err(ProtocolError::BadValue { key, value, reason }) => {
                assert_eq!((key.as_str(), value.as_str()), ("weight", "x"));
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
