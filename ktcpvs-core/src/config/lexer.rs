//! The lexer of the configuration language: text → tokens, each with the
//! 1-based line and column where it starts.
//!
//! Tokens need not be separated by blanks: `=`, `{`, `}` and `;` are tokens
//! of their own wherever they appear, so `listen=1.2.3.4:80` and
//! `Virtual web{` lex exactly like the original's whitespace-separated
//! form. `#` starts a comment that runs to the end of the line anywhere
//! outside a quoted string. A quoted string stays on one line; inside it
//! `\"`, `\\`, `\n`, `\r` and `\t` are escapes, and any other backslash is
//! kept as written (so `"\.html$"` reaches the regex compiler unchanged).

use std::fmt;

/// What kind of token, with its text where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// A bare word: a keyword, a name, a number or an address. Any run of
    /// characters other than blanks, `=`, `{`, `}`, `;`, `"` and `#`.
    Word(String),
    /// A quoted string, escapes already decoded.
    Str(String),
    /// `=`
    Equals,
    /// `{`
    Open,
    /// `}`
    Close,
    /// `;`
    Semicolon,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(w) => write!(f, "'{w}'"),
            TokenKind::Str(s) => write!(f, "string \"{s}\""),
            TokenKind::Equals => f.write_str("'='"),
            TokenKind::Open => f.write_str("'{'"),
            TokenKind::Close => f.write_str("'}'"),
            TokenKind::Semicolon => f.write_str("';'"),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    /// The token.
    pub kind: TokenKind,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// A lexical error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LexError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Whether `c` ends a bare word.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '=' | '{' | '}' | ';' | '"' | '#')
}

/// A character cursor that tracks line and column.
struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }
}

/// Splits `text` into tokens.
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut cur = Cursor {
        chars: text.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut tokens = Vec::new();
    while let Some(c) = cur.peek() {
        let (line, column) = (cur.line, cur.column);
        let kind = match c {
            c if c.is_whitespace() => {
                cur.bump();
                continue;
            }
            '#' => {
                while cur.peek().is_some_and(|c| c != '\n') {
                    cur.bump();
                }
                continue;
            }
            '=' | '{' | '}' | ';' => {
                cur.bump();
                match c {
                    '=' => TokenKind::Equals,
                    '{' => TokenKind::Open,
                    '}' => TokenKind::Close,
                    _ => TokenKind::Semicolon,
                }
            }
            '"' => {
                cur.bump();
                TokenKind::Str(quoted(&mut cur, line, column)?)
            }
            _ => {
                let mut word = String::new();
                while let Some(c) = cur.peek().filter(|&c| !is_delimiter(c)) {
                    word.push(c);
                    cur.bump();
                }
                TokenKind::Word(word)
            }
        };
        tokens.push(Token { kind, line, column });
    }
    Ok(tokens)
}

/// Reads the rest of a quoted string whose opening quote was at
/// (`line`, `column`) and has been consumed.
fn quoted(cur: &mut Cursor<'_>, line: usize, column: usize) -> Result<String, LexError> {
    let unterminated = || LexError {
        line,
        column,
        message: "unterminated string: a quoted string must end with '\"' on the same line"
            .to_string(),
    };
    let mut text = String::new();
    loop {
        match cur.peek() {
            None | Some('\n') | Some('\r') => return Err(unterminated()),
            Some('"') => {
                cur.bump();
                return Ok(text);
            }
            Some('\\') => {
                cur.bump();
                match cur.peek() {
                    None | Some('\n') | Some('\r') => return Err(unterminated()),
                    Some(e @ ('"' | '\\')) => {
                        cur.bump();
                        text.push(e);
                    }
                    Some(e @ ('n' | 'r' | 't')) => {
                        cur.bump();
                        text.push(match e {
                            'n' => '\n',
                            'r' => '\r',
                            _ => '\t',
                        });
                    }
                    Some(_) => text.push('\\'),
                }
            }
            Some(c) => {
                cur.bump();
                text.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn word(w: &str) -> TokenKind {
        TokenKind::Word(w.to_string())
    }

    #[test]
    fn punctuation_needs_no_blanks() {
        assert_eq!(
            kinds("Virtual web{listen=1.2.3.4:80;}"),
            vec![
                word("Virtual"),
                word("web"),
                TokenKind::Open,
                word("listen"),
                TokenKind::Equals,
                word("1.2.3.4:80"),
                TokenKind::Semicolon,
                TokenKind::Close,
            ]
        );
    }

    #[test]
    fn comments_run_to_end_of_line_anywhere_outside_strings() {
        assert_eq!(
            kinds("a#b c\nd \"x#y\" # z"),
            vec![word("a"), word("d"), TokenKind::Str("x#y".to_string())]
        );
    }

    #[test]
    fn positions_are_one_based_in_characters() {
        let t = tokenize("é = x\n  \"q\"").unwrap();
        assert_eq!((t[0].line, t[0].column), (1, 1));
        assert_eq!((t[1].line, t[1].column), (1, 3));
        assert_eq!((t[2].line, t[2].column), (1, 5));
        assert_eq!((t[3].line, t[3].column), (2, 3));
    }

    #[test]
    fn escapes_decode_and_unknown_backslashes_stay() {
        assert_eq!(
            kinds(r#""a\"b\\c\.d\te""#),
            vec![TokenKind::Str("a\"b\\c\\.d\te".to_string())]
        );
    }

    #[test]
    fn unterminated_string_names_its_start() {
        let e = tokenize("x\n  \"abc\n\"").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("unterminated string"));
        let e = tokenize("\"abc\\").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }
}
