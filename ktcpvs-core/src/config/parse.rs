//! The parser of the configuration language: tokens → located commands.
//!
//! Each `Virtual NAME { … }` block becomes one [`Command::AddService`]
//! carrying every setting of the block, followed by one
//! [`Command::AddServer`] per `server` line and then one
//! [`Command::AddRule`] per `rule` line (servers first, as the original's
//! loader sent them, so a rule may name a server declared below it). Every
//! command is located at the first token of the statement it came from.
//!
//! This stage checks everything that can be checked from the text alone:
//! keywords, punctuation, numbers and their ranges, address syntax,
//! duplicate keywords. What needs the running state (is the scheduler
//! registered, does the regex compile, is the rule's server declared) is
//! checked when the commands are applied, and
//! [`Control::load_config`](crate::control::Control::load_config) reports it
//! at the statement's location.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::lexer::{tokenize, Token, TokenKind};
use super::Located;
use crate::command::{Command, RuleSpec, ServiceSpec};
use crate::condition::{Conditions, EditOp, EditSide, HeaderEdit, RuleAction};
use crate::endpoint::Endpoint;
use crate::error::{ConfigError, ConfigProblem, Location};
use crate::health::{is_health_key, HealthConfig};
use crate::model::{
    parse_upgrade_list, validate_dns_name, validate_service_name, validate_upgrades, Discovery,
    DiscoveryKind, ErrorPage, ProxyVersion, MAX_CLIENTS_LIMIT, MAX_MATCH_GROUP, MAX_PREFORK,
    MAX_SERVER_CONNECTIONS, MAX_TIMEOUT_SECS, MAX_WEIGHT,
};
use crate::network::Networks;
use crate::tls::{BackendTls, CertificateFiles};

/// The statements allowed inside a `Virtual` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Keyword {
    Listen,
    Scheduler,
    StartServers,
    MaxClients,
    MinSpareServers,
    MaxSpareServers,
    Redirect,
    Server,
    Rule,
    ConnectTimeout,
    ReadTimeout,
    KeepaliveTimeout,
    HeaderTimeout,
    ResponseTimeout,
    ForwardFor,
    Http2,
    Upgrade,
    Option,
    Certificate,
    SniHostCheck,
    ProxyProtocol,
    Discover,
    ErrorPage,
}

impl Keyword {
    const ALL: [Keyword; 23] = [
        Keyword::Listen,
        Keyword::Scheduler,
        Keyword::StartServers,
        Keyword::MaxClients,
        Keyword::MinSpareServers,
        Keyword::MaxSpareServers,
        Keyword::Redirect,
        Keyword::Server,
        Keyword::Rule,
        Keyword::ConnectTimeout,
        Keyword::ReadTimeout,
        Keyword::KeepaliveTimeout,
        Keyword::HeaderTimeout,
        Keyword::ResponseTimeout,
        Keyword::ForwardFor,
        Keyword::Http2,
        Keyword::Upgrade,
        Keyword::Option,
        Keyword::Certificate,
        Keyword::SniHostCheck,
        Keyword::ProxyProtocol,
        Keyword::Discover,
        Keyword::ErrorPage,
    ];

    /// The keyword as written in a file (lower case).
    fn name(self) -> &'static str {
        match self {
            Keyword::Listen => "listen",
            Keyword::Scheduler => "scheduler",
            Keyword::StartServers => "startservers",
            Keyword::MaxClients => "maxclients",
            Keyword::MinSpareServers => "minspareservers",
            Keyword::MaxSpareServers => "maxspareservers",
            Keyword::Redirect => "redirect",
            Keyword::Server => "server",
            Keyword::Rule => "rule",
            Keyword::ConnectTimeout => "connect_timeout",
            Keyword::ReadTimeout => "read_timeout",
            Keyword::KeepaliveTimeout => "keepalive_timeout",
            Keyword::HeaderTimeout => "header_timeout",
            Keyword::ResponseTimeout => "response_timeout",
            Keyword::ForwardFor => "forwardfor",
            Keyword::Http2 => "http2",
            Keyword::Upgrade => "upgrade",
            Keyword::Option => "option",
            Keyword::Certificate => "certificate",
            Keyword::SniHostCheck => "sni_host_check",
            Keyword::ProxyProtocol => "proxy_protocol",
            Keyword::Discover => "discover",
            Keyword::ErrorPage => "error_page",
        }
    }

    /// The keyword a word spells, ignoring case.
    fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(word))
    }

    /// The prefix of every error about this statement, in the original's
    /// wording where it had one.
    fn context(self) -> String {
        match self {
            Keyword::Listen => "parsing listen address error".to_string(),
            Keyword::Redirect => "parsing redirect address error".to_string(),
            k => format!("parsing {} error", k.name()),
        }
    }

    /// Whether the keyword may appear more than once in a block.
    fn repeats(self) -> bool {
        matches!(
            self,
            Keyword::Server
                | Keyword::Rule
                | Keyword::Option
                | Keyword::Certificate
                | Keyword::Discover
                | Keyword::ErrorPage
        )
    }

    /// The accepted range of a numeric setting.
    fn range(self) -> (u32, u32) {
        match self {
            Keyword::MaxClients => (1, MAX_CLIENTS_LIMIT),
            Keyword::ConnectTimeout
            | Keyword::ReadTimeout
            | Keyword::KeepaliveTimeout
            | Keyword::HeaderTimeout
            | Keyword::ResponseTimeout => (0, MAX_TIMEOUT_SECS),
            _ => (1, MAX_PREFORK),
        }
    }
}

/// What a block has collected so far.
struct Block {
    name: String,
    opened: Location,
    spec: ServiceSpec,
    /// First line of each non-repeating keyword seen.
    seen: BTreeMap<Keyword, usize>,
    /// First line of each `option NAME` seen.
    options_seen: BTreeMap<String, usize>,
    /// First line of each health setting seen.
    health_seen: BTreeMap<String, usize>,
    servers: Vec<Located<Command>>,
    rules: Vec<Located<Command>>,
}

/// A cursor over the tokens of one text.
struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    file: Option<&'a Path>,
    /// Where the text ends, for "the file ended" errors.
    end: (usize, usize),
}

impl<'a> Parser<'a> {
    /// A parser over the tokens of `text` (named `file` in errors); a
    /// lexical error is a syntax error at its place.
    fn of(text: &str, file: Option<&'a Path>) -> Result<Parser<'a>, ConfigError> {
        let tokens = tokenize(text).map_err(|e| ConfigError {
            location: Location {
                file: file.map(Path::to_path_buf),
                line: e.line,
                column: e.column,
            },
            message: e.message,
            problem: ConfigProblem::Syntax,
        })?;
        Ok(Parser {
            tokens,
            pos: 0,
            file,
            end: end_of(text),
        })
    }
}

/// Parses the text of one rule statement after `rule =` for `service`.
pub(super) fn parse_rule(service: &str, text: &str) -> Result<Command, ConfigError> {
    let mut parser = Parser::of(text, None)?;
    let command = parser.rule("parsing rule error", service)?;
    if let Some(extra) = parser.next() {
        return Err(parser.error_at(
            &extra,
            format!(
                "parsing rule error: unexpected {} after the rule",
                extra.kind
            ),
        ));
    }
    Ok(command)
}

/// Parses a whole configuration text.
pub(super) fn parse(text: &str, file: Option<&Path>) -> Result<Vec<Located<Command>>, ConfigError> {
    let mut parser = Parser::of(text, file)?;
    let mut commands = Vec::new();
    let mut admin_line: Option<usize> = None;
    while let Some(token) = parser.next() {
        match &token.kind {
            TokenKind::Semicolon => continue,
            TokenKind::Word(w) if w.eq_ignore_ascii_case("virtual") => {
                parser.block(&token, &mut commands)?;
            }
            TokenKind::Word(w) if w.eq_ignore_ascii_case("admin") => {
                let context = "parsing admin error";
                if let Some(first) = admin_line.replace(token.line) {
                    return Err(parser.error_at(
                        &token,
                        format!(
                            "{context}: duplicate keyword 'admin' (first given at line {first})"
                        ),
                    ));
                }
                parser.expect_punct(context, TokenKind::Equals, "'admin'")?;
                let addr = parser.expect_endpoint(context)?;
                commands.push(Located {
                    location: parser.location(token.line, token.column),
                    value: Command::SetAdmin { addr: Some(addr) },
                });
            }
            TokenKind::Word(w) => {
                return Err(parser.error_at(
                    &token,
                    format!(
                        "invalid command {w}: expected 'Virtual NAME {{' or 'admin = ADDR:PORT'"
                    ),
                ))
            }
            other => {
                return Err(parser.error_at(
                    &token,
                    format!("invalid command {other}: expected 'Virtual NAME {{'"),
                ))
            }
        }
    }
    Ok(commands)
}

/// The line and column just after the last character of `text`.
fn end_of(text: &str) -> (usize, usize) {
    let line = text.matches('\n').count() + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() + 1)
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn location(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.map(Path::to_path_buf),
            line,
            column,
        }
    }

    fn error_at(&self, token: &Token, message: String) -> ConfigError {
        ConfigError {
            location: self.location(token.line, token.column),
            message,
            problem: ConfigProblem::Syntax,
        }
    }

    fn error_at_end(&self, message: String) -> ConfigError {
        ConfigError {
            location: self.location(self.end.0, self.end.1),
            message,
            problem: ConfigProblem::Syntax,
        }
    }

    /// The next token, or an error saying what was `expected` when the
    /// text ended.
    fn expect_any(&mut self, context: &str, expected: &str) -> Result<Token, ConfigError> {
        self.next().ok_or_else(|| {
            self.error_at_end(format!("{context}: expected {expected} but the file ended"))
        })
    }

    /// A bare word.
    fn expect_word(
        &mut self,
        context: &str,
        expected: &str,
    ) -> Result<(Token, String), ConfigError> {
        let token = self.expect_any(context, expected)?;
        match &token.kind {
            TokenKind::Word(w) => {
                let w = w.clone();
                Ok((token, w))
            }
            other => Err(self.error_at(
                &token,
                format!("{context}: expected {expected} but found {other}"),
            )),
        }
    }

    /// A given punctuation token.
    fn expect_punct(
        &mut self,
        context: &str,
        want: TokenKind,
        after: &str,
    ) -> Result<(), ConfigError> {
        let expected = format!("{want} after {after}");
        let token = self.expect_any(context, &expected)?;
        if token.kind == want {
            Ok(())
        } else {
            Err(self.error_at(
                &token,
                format!("{context}: expected {expected} but found {}", token.kind),
            ))
        }
    }

    /// A bare word that must equal `keyword` (ignoring case).
    fn expect_keyword(&mut self, context: &str, keyword: &str) -> Result<(), ConfigError> {
        let expected = format!("the keyword '{keyword}'");
        let (token, word) = self.expect_word(context, &expected)?;
        if word.eq_ignore_ascii_case(keyword) {
            Ok(())
        } else {
            Err(self.error_at(
                &token,
                format!("{context}: expected {expected} but found '{word}'"),
            ))
        }
    }

    /// An address `HOST[:PORT]`.
    fn expect_endpoint(&mut self, context: &str) -> Result<Endpoint, ConfigError> {
        let (token, word) = self.expect_word(context, "an address HOST[:PORT]")?;
        word.parse::<Endpoint>()
            .map_err(|e| self.error_at(&token, format!("{context}: {e}")))
    }

    /// An unsigned integer in `lo..=hi`.
    fn expect_number(
        &mut self,
        context: &str,
        what: &str,
        lo: u32,
        hi: u32,
    ) -> Result<u32, ConfigError> {
        let (token, word) = self.expect_word(context, what)?;
        number(&word, what, lo, hi).map_err(|m| self.error_at(&token, format!("{context}: {m}")))
    }

    /// Parses one `Virtual NAME { … }` block; `virtual` was consumed.
    fn block(
        &mut self,
        virtual_token: &Token,
        commands: &mut Vec<Located<Command>>,
    ) -> Result<(), ConfigError> {
        let context = "parsing service error";
        let (name_token, name) = self.expect_word(context, "a service name after 'Virtual'")?;
        validate_service_name(&name)
            .map_err(|e| self.error_at(&name_token, format!("{context}: {e}")))?;
        self.expect_punct(context, TokenKind::Open, &format!("'Virtual {name}'"))?;
        let mut block = Block {
            name,
            opened: self.location(virtual_token.line, virtual_token.column),
            spec: ServiceSpec::default(),
            seen: BTreeMap::new(),
            options_seen: BTreeMap::new(),
            health_seen: BTreeMap::new(),
            servers: Vec::new(),
            rules: Vec::new(),
        };
        loop {
            let Some(token) = self.next() else {
                return Err(self.error_at_end(format!(
                    "missing '}}': service '{}' opened at line {} is not closed",
                    block.name, block.opened.line
                )));
            };
            match &token.kind {
                TokenKind::Close => break,
                TokenKind::Semicolon => continue,
                TokenKind::Word(w) => match Keyword::from_word(w) {
                    Some(keyword) => self.statement(keyword, &token, &mut block)?,
                    None if is_health_key(&w.to_ascii_lowercase()) => {
                        self.health_setting(&token, &w.to_ascii_lowercase(), &mut block)?
                    }
                    None if w.eq_ignore_ascii_case("virtual") => {
                        return Err(self.error_at(
                            &token,
                            format!(
                                "missing '}}': service '{}' opened at line {} is not closed before the next 'Virtual'",
                                block.name, block.opened.line
                            ),
                        ))
                    }
                    None => {
                        return Err(self.error_at(
                            &token,
                            format!(
                                "invalid command {w}: expected one of {} or '}}'",
                                keyword_list()
                            ),
                        ))
                    }
                },
                other => {
                    return Err(self.error_at(
                        &token,
                        format!(
                            "invalid command {other}: expected one of {} or '}}'",
                            keyword_list()
                        ),
                    ))
                }
            }
        }
        commands.push(Located {
            location: block.opened,
            value: Command::AddService {
                name: block.name,
                spec: block.spec,
            },
        });
        commands.extend(block.servers);
        commands.extend(block.rules);
        Ok(())
    }

    /// Parses one statement whose keyword token was consumed.
    fn statement(
        &mut self,
        keyword: Keyword,
        token: &Token,
        block: &mut Block,
    ) -> Result<(), ConfigError> {
        let context = keyword.context();
        let context = context.as_str();
        if !keyword.repeats() {
            if let Some(first) = block.seen.insert(keyword, token.line) {
                return Err(self.error_at(
                    token,
                    format!(
                        "{context}: duplicate keyword '{}' in service '{}' (first given at line {first})",
                        keyword.name(),
                        block.name
                    ),
                ));
            }
        }
        let location = self.location(token.line, token.column);
        let option_name = match keyword {
            Keyword::Option => Some(self.option_name(context, token, block)?),
            _ => None,
        };
        self.expect_punct(context, TokenKind::Equals, &format!("'{}'", keyword.name()))?;
        match keyword {
            Keyword::Server => {
                let (server, settings) = self.server(context, &block.name)?;
                block.servers.push(Located {
                    location: location.clone(),
                    value: server,
                });
                for value in settings {
                    block.servers.push(Located {
                        location: location.clone(),
                        value,
                    });
                }
            }
            Keyword::Rule => {
                let rule = self.rule(context, &block.name)?;
                block.rules.push(Located {
                    location,
                    value: rule,
                });
            }
            Keyword::Option => {
                let value = self.option_value(context)?;
                let name = option_name.unwrap_or_default();
                block.spec.options.push((name, Some(value)));
            }
            Keyword::Certificate => {
                let files = self.certificate(context)?;
                block
                    .spec
                    .certificates
                    .get_or_insert_with(Vec::new)
                    .push(files);
            }
            Keyword::ErrorPage => {
                let (t, word) = self.expect_word(context, "a status")?;
                let status = number(&word, "a status", 400, 599)
                    .map_err(|e| self.error_at(&t, format!("{context}: {e}")))?;
                let (_, content_type) = self.text_value(context, "a quoted content type")?;
                let (_, body) = self.text_value(context, "a quoted body")?;
                let pages = &mut block.spec.error_pages;
                if pages.iter().any(|(s, _)| u32::from(*s) == status) {
                    return Err(self.error_at(&t, format!("{context}: {status} given twice")));
                }
                pages.push((status as u16, Some(ErrorPage { content_type, body })));
            }
            Keyword::Discover => {
                let discovery = self.discovery(context)?;
                let list = block.spec.discover.get_or_insert_with(Vec::new);
                if list.iter().any(|d| d.name == discovery.name) {
                    return Err(self.error_at_end_of_last(format!(
                        "{context}: '{}' is discovered twice",
                        discovery.name
                    )));
                }
                list.push(discovery);
            }
            _ => self.setting(keyword, context, &mut block.spec)?,
        }
        if self.peek().is_some_and(|t| t.kind == TokenKind::Semicolon) {
            self.pos += 1;
        }
        Ok(())
    }

    /// A health setting `KEY = VALUE` whose key token was consumed: the
    /// value is a bare word or a quoted string, checked at once so an error
    /// points at it.
    fn health_setting(
        &mut self,
        token: &Token,
        key: &str,
        block: &mut Block,
    ) -> Result<(), ConfigError> {
        let context = format!("parsing {key} error");
        let context = context.as_str();
        if let Some(first) = block.health_seen.insert(key.to_string(), token.line) {
            return Err(self.error_at(
                token,
                format!(
                    "{context}: duplicate keyword '{key}' in service '{}' (first given at line {first})",
                    block.name
                ),
            ));
        }
        self.expect_punct(context, TokenKind::Equals, &format!("'{key}'"))?;
        let t = self.expect_any(context, "a value")?;
        let value = match &t.kind {
            TokenKind::Word(w) | TokenKind::Str(w) => w.clone(),
            other => {
                return Err(
                    self.error_at(&t, format!("{context}: expected a value but found {other}"))
                )
            }
        };
        HealthConfig::default()
            .set(key, &value)
            .map_err(|e| self.error_at(&t, format!("{context}: {e}")))?;
        block.spec.health.push((key.to_string(), value));
        if self.peek().is_some_and(|t| t.kind == TokenKind::Semicolon) {
            self.pos += 1;
        }
        Ok(())
    }

    /// The name of an `option NAME = …` statement, once per block.
    fn option_name(
        &mut self,
        context: &str,
        token: &Token,
        block: &mut Block,
    ) -> Result<String, ConfigError> {
        let (name_token, name) = self.expect_word(context, "an option name")?;
        check_option_name(&name)
            .map_err(|m| self.error_at(&name_token, format!("{context}: {m}")))?;
        if let Some(first) = block.options_seen.insert(name.clone(), token.line) {
            return Err(self.error_at(
                &name_token,
                format!(
                    "{context}: duplicate option '{name}' in service '{}' (first given at line {first})",
                    block.name
                ),
            ));
        }
        Ok(name)
    }

    /// The quoted value of an `option` statement.
    fn option_value(&mut self, context: &str) -> Result<String, ConfigError> {
        let t = self.expect_any(context, "a quoted value")?;
        let TokenKind::Str(value) = &t.kind else {
            return Err(self.error_at(
                &t,
                format!("{context}: expected a quoted value but found {}", t.kind),
            ));
        };
        if value.contains(['"', '\n', '\r']) {
            return Err(self.error_at(
                &t,
                format!("{context}: an option value must not contain quotes or line breaks"),
            ));
        }
        Ok(value.clone())
    }

    /// The part of a server statement after `server =`:
    /// `ADDR[:PORT] [WEIGHT] [tls [name NAME] [ca FILE] [client_certificate
    /// FILE key FILE]]`: the server, and how to reach it over TLS if so.
    fn server(
        &mut self,
        context: &str,
        service: &str,
    ) -> Result<(Command, Vec<Command>), ConfigError> {
        let server = self.expect_endpoint(context)?;
        let weight = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => {
                Some(self.expect_number(context, "a weight", 0, MAX_WEIGHT)?)
            }
            _ => None,
        };
        let limit = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) if w.eq_ignore_ascii_case("maxconn") => {
                self.pos += 1;
                let maxconn =
                    self.expect_number(context, "a connection limit", 0, MAX_SERVER_CONNECTIONS)?;
                Some(Command::SetServerLimit {
                    service: service.to_string(),
                    server: server.clone(),
                    maxconn,
                })
            }
            _ => None,
        };
        let proxy = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) if w.eq_ignore_ascii_case("send_proxy") => {
                self.pos += 1;
                let t = self.expect_any(context, "a PROXY protocol version")?;
                let version = match &t.kind {
                    TokenKind::Word(w) => w.parse::<ProxyVersion>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    self.error_at(
                        &t,
                        format!("{context}: send_proxy takes v1 or v2, not {}", t.kind),
                    )
                })?;
                Some(Command::SetServerProxy {
                    service: service.to_string(),
                    server: server.clone(),
                    version: Some(version),
                })
            }
            _ => None,
        };
        let tls = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) if w.eq_ignore_ascii_case("tls") => {
                self.pos += 1;
                Some(Command::SetServerTls {
                    service: service.to_string(),
                    server: server.clone(),
                    tls: Some(self.server_tls(context)?),
                })
            }
            _ => None,
        };
        let add = Command::AddServer {
            service: service.to_string(),
            server,
            weight,
        };
        Ok((add, limit.into_iter().chain(proxy).chain(tls).collect()))
    }

    /// The settings after `tls` in a server statement, in any order, each
    /// at most once.
    fn server_tls(&mut self, context: &str) -> Result<BackendTls, ConfigError> {
        let mut tls = BackendTls::default();
        while let Some(Token {
            kind: TokenKind::Word(w),
            ..
        }) = self.peek()
        {
            let word = w.to_ascii_lowercase();
            if !matches!(word.as_str(), "name" | "ca" | "client_certificate") {
                break;
            }
            let token = self.expect_any(context, "a server TLS setting")?;
            let twice = |p: &Self| p.error_at(&token, format!("{context}: '{word}' given twice"));
            match word.as_str() {
                "name" if tls.name.is_none() => {
                    let (_, name) = self.expect_word(context, "the server's TLS name")?;
                    tls.name = Some(name);
                }
                "ca" if tls.ca.is_none() => {
                    tls.ca = Some(self.file_name(context, "a CA file name")?);
                }
                "client_certificate" if tls.certificate.is_none() => {
                    tls.certificate = Some(self.certificate(context)?);
                }
                _ => return Err(twice(self)),
            }
        }
        tls.validate()
            .map_err(|e| self.error_at_end_of_last(format!("{context}: {e}")))?;
        Ok(tls)
    }

    /// An error located at the last token read.
    fn error_at_end_of_last(&self, message: String) -> ConfigError {
        match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(t) => self.error_at(t, message),
            None => self.error_at_end(message),
        }
    }

    /// The value of a single-valued service setting, into `spec`.
    fn setting(
        &mut self,
        keyword: Keyword,
        context: &str,
        spec: &mut ServiceSpec,
    ) -> Result<(), ConfigError> {
        match keyword {
            Keyword::Listen => spec.listen = Some(self.expect_endpoint(context)?),
            Keyword::Redirect => spec.redirect = Some(Some(self.expect_endpoint(context)?)),
            Keyword::Scheduler => {
                let (_, name) = self.expect_word(context, "a scheduler name")?;
                spec.scheduler = Some(name);
            }
            Keyword::ForwardFor => spec.forward_for = Some(self.on_off(context)?),
            Keyword::Http2 => spec.http2 = Some(self.on_off(context)?),
            Keyword::SniHostCheck => spec.host_check = Some(self.on_off(context)?),
            Keyword::Upgrade => spec.upgrades = Some(self.upgrade_list(context)?),
            Keyword::ProxyProtocol => spec.proxy_protocol = Some(self.networks(context)?),
            Keyword::Server
            | Keyword::Rule
            | Keyword::Option
            | Keyword::Certificate
            | Keyword::Discover
            | Keyword::ErrorPage => {}
            _ => {
                let (lo, hi) = keyword.range();
                let what = if lo == 0 {
                    "a number of seconds"
                } else {
                    "a number"
                };
                let v = self.expect_number(context, what, lo, hi)?;
                let field = match keyword {
                    Keyword::StartServers => &mut spec.startservers,
                    Keyword::MaxClients => &mut spec.maxclients,
                    Keyword::MinSpareServers => &mut spec.minspareservers,
                    Keyword::MaxSpareServers => &mut spec.maxspareservers,
                    Keyword::ConnectTimeout => &mut spec.connect_timeout,
                    Keyword::ReadTimeout => &mut spec.read_timeout,
                    Keyword::KeepaliveTimeout => &mut spec.keepalive_timeout,
                    Keyword::HeaderTimeout => &mut spec.header_timeout,
                    _ => &mut spec.response_timeout,
                };
                *field = Some(v);
            }
        }
        Ok(())
    }

    /// `on` or `off`.
    fn on_off(&mut self, context: &str) -> Result<bool, ConfigError> {
        let (t, w) = self.expect_word(context, "'on' or 'off'")?;
        if w.eq_ignore_ascii_case("on") {
            Ok(true)
        } else if w.eq_ignore_ascii_case("off") {
            Ok(false)
        } else {
            Err(self.error_at(
                &t,
                format!("{context}: expected 'on' or 'off' but found '{w}'"),
            ))
        }
    }

    /// The part of a certificate statement after `certificate =`:
    /// `"CHAIN" key "KEY"`. A relative file name is taken from the
    /// directory of the configuration file.
    fn certificate(&mut self, context: &str) -> Result<CertificateFiles, ConfigError> {
        let chain = self.file_name(context, "the certificate chain's file name")?;
        self.expect_keyword(context, "key")?;
        let key = self.file_name(context, "the private key's file name")?;
        Ok(CertificateFiles { chain, key })
    }

    /// A file name (quoted or a bare word), relative to the configuration
    /// file's directory.
    fn file_name(&mut self, context: &str, what: &str) -> Result<PathBuf, ConfigError> {
        let t = self.expect_any(context, what)?;
        let name = match &t.kind {
            TokenKind::Str(s) | TokenKind::Word(s) if !s.is_empty() => s.clone(),
            other => {
                return Err(
                    self.error_at(&t, format!("{context}: expected {what} but found {other}"))
                )
            }
        };
        if name.chars().any(char::is_control) {
            return Err(self.error_at(
                &t,
                format!("{context}: a file name must hold no control character"),
            ));
        }
        let path = PathBuf::from(name);
        Ok(match self.file.and_then(Path::parent) {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
            _ => path,
        })
    }

    /// The value of `upgrade =`: `none` or protocol names, checked.
    fn upgrade_list(&mut self, context: &str) -> Result<Vec<String>, ConfigError> {
        let t = self.expect_any(context, "'none' or a list of protocol names")?;
        let text = match &t.kind {
            TokenKind::Word(w) | TokenKind::Str(w) => w.clone(),
            other => {
                return Err(self.error_at(
                    &t,
                    format!(
                        "{context}: expected 'none' or a list of protocol names but found {other}"
                    ),
                ))
            }
        };
        validate_upgrades(&parse_upgrade_list(&text))
            .map_err(|e| self.error_at(&t, format!("{context}: {e}")))
    }

    /// The part of a discover statement after `discover =`: `dns
    /// NAME:PORT [WEIGHT]` or `srv NAME [WEIGHT]`.
    fn discovery(&mut self, context: &str) -> Result<Discovery, ConfigError> {
        let (kind_token, kind) = self.expect_word(context, "dns or srv")?;
        let (name_token, target) = self.expect_word(context, "a DNS name")?;
        let (kind, name) = match kind.to_ascii_lowercase().as_str() {
            "dns" => {
                let (name, port) = target
                    .rsplit_once(':')
                    .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
                    .ok_or_else(|| {
                        self.error_at(
                            &name_token,
                            format!("{context}: expected NAME:PORT but found '{target}'"),
                        )
                    })?;
                (DiscoveryKind::Address { port }, name.to_string())
            }
            "srv" => (DiscoveryKind::Srv, target.clone()),
            _ => {
                return Err(self.error_at(
                    &kind_token,
                    format!("{context}: expected dns or srv but found '{kind}'"),
                ))
            }
        };
        let name = name.strip_suffix('.').unwrap_or(&name).to_string();
        validate_dns_name(&name)
            .map_err(|e| self.error_at(&name_token, format!("{context}: {e}")))?;
        let weight = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => {
                self.expect_number(context, "a weight", 0, MAX_WEIGHT)?
            }
            _ => 1,
        };
        Ok(Discovery { kind, name, weight })
    }

    /// A list of networks (`none`, or CIDR blocks separated by commas).
    fn networks(&mut self, context: &str) -> Result<Networks, ConfigError> {
        let t = self.expect_any(context, "'none' or a list of networks")?;
        let text = match &t.kind {
            TokenKind::Word(w) | TokenKind::Str(w) => w.clone(),
            other => {
                return Err(self.error_at(
                    &t,
                    format!("{context}: expected 'none' or a list of networks but found {other}"),
                ))
            }
        };
        text.parse::<Networks>()
            .map_err(|e| self.error_at(&t, format!("{context}: {e}")))
    }

    /// The part of a rule after `rule =`: `pattern "RE" [match N]
    /// {condition} (use server ADDR | redirect STATUS "LOCATION" | respond
    /// STATUS "TYPE" "BODY") {edit}`. A rule that is only a pattern, a
    /// match and a server is the original's [`Command::AddRule`].
    fn rule(&mut self, context: &str, service: &str) -> Result<Command, ConfigError> {
        self.expect_keyword(context, "pattern")?;
        let (_, pattern) = self.text_value(context, "a quoted pattern")?;
        let mut spec = RuleSpec {
            pattern,
            ..RuleSpec::default()
        };
        if self.next_word_is("match") {
            self.pos += 1;
            spec.match_group =
                Some(self.expect_number(context, "a match number", 0, MAX_MATCH_GROUP)?);
        }
        self.rule_conditions(context, &mut spec.conditions)?;
        let (t, word) = self.expect_word(context, "'use', 'redirect' or 'respond'")?;
        let server = match word.to_ascii_lowercase().as_str() {
            "use" => {
                self.expect_keyword(context, "server")?;
                Some(self.expect_endpoint(context)?)
            }
            "redirect" => {
                let status = self.expect_number(context, "a redirect status", 300, 399)?;
                let (_, location) = self.text_value(context, "a quoted location")?;
                spec.action = RuleAction::Redirect {
                    status: status as u16,
                    location,
                };
                None
            }
            "respond" => {
                let status = self.expect_number(context, "a response status", 200, 599)?;
                let (_, content_type) = self.text_value(context, "a quoted content type")?;
                let (_, body) = self.text_value(context, "a quoted body")?;
                spec.action = RuleAction::Respond {
                    status: status as u16,
                    content_type,
                    body,
                };
                None
            }
            _ => {
                return Err(self.error_at(
                    &t,
                    format!("{context}: expected a condition, 'use', 'redirect' or 'respond' but found '{word}'"),
                ))
            }
        };
        self.rule_edits(context, &mut spec.edits)?;
        if let Err(e) = spec.action.validate() {
            return Err(self.error_at_end_of_last(format!("{context}: {e}")));
        }
        Ok(match server {
            Some(server)
                if spec.conditions.is_empty()
                    && spec.edits.is_empty()
                    && spec.action == RuleAction::Forward =>
            {
                Command::AddRule {
                    service: service.to_string(),
                    pattern: spec.pattern,
                    match_group: spec.match_group,
                    server,
                }
            }
            server => Command::AddRuleWith {
                service: service.to_string(),
                rule: spec,
                server,
            },
        })
    }

    /// Whether the next token is the word `word` (any case).
    fn next_word_is(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    /// A bare word or a quoted string.
    fn text_value(&mut self, context: &str, what: &str) -> Result<(Token, String), ConfigError> {
        let t = self.expect_any(context, what)?;
        match &t.kind {
            TokenKind::Str(s) | TokenKind::Word(s) => {
                let s = s.clone();
                Ok((t, s))
            }
            other => {
                Err(self.error_at(&t, format!("{context}: expected {what} but found {other}")))
            }
        }
    }

    /// The conditions of a rule, up to its action.
    fn rule_conditions(&mut self, context: &str, c: &mut Conditions) -> Result<(), ConfigError> {
        loop {
            let Some(Token {
                kind: TokenKind::Word(w),
                ..
            }) = self.peek()
            else {
                return Ok(());
            };
            let word = w.to_ascii_lowercase();
            let twice =
                |p: &Self, t: &Token| p.error_at(t, format!("{context}: '{word}' given twice"));
            let token = match word.as_str() {
                "host" | "method" | "header" | "cookie" | "query" | "src" | "normalize" => {
                    self.expect_any(context, "a condition")?
                }
                _ => return Ok(()),
            };
            match word.as_str() {
                "host" if c.host.is_none() => {
                    c.host = Some(self.text_value(context, "a host pattern")?.1)
                }
                "method" if c.methods.is_empty() => {
                    let (_, list) = self.text_value(context, "a list of methods")?;
                    c.methods = list.split(',').map(|m| m.trim().to_string()).collect();
                }
                "header" | "cookie" => {
                    let (_, name) = self.expect_word(context, "a name")?;
                    let (_, re) = self.text_value(context, "a quoted pattern")?;
                    let list = if word == "header" {
                        &mut c.headers
                    } else {
                        &mut c.cookies
                    };
                    list.push((name, re));
                }
                "query" if c.query.is_none() => {
                    c.query = Some(self.text_value(context, "a query pattern")?.1)
                }
                "src" if c.src.is_empty() => {
                    let (t, text) = self.text_value(context, "a list of networks")?;
                    c.src = text
                        .parse()
                        .map_err(|e| self.error_at(&t, format!("{context}: {e}")))?;
                }
                "normalize" if !c.normalize => c.normalize = true,
                _ => return Err(twice(self, &token)),
            }
        }
    }

    /// The header edits after a rule's action.
    fn rule_edits(
        &mut self,
        context: &str,
        edits: &mut Vec<HeaderEdit>,
    ) -> Result<(), ConfigError> {
        loop {
            let side = if self.next_word_is("request_header") {
                EditSide::Request
            } else if self.next_word_is("response_header") {
                EditSide::Response
            } else {
                return Ok(());
            };
            self.pos += 1;
            let (t, op) = self.expect_word(context, "set, add or del")?;
            let op = match op.to_ascii_lowercase().as_str() {
                "set" => EditOp::Set,
                "add" => EditOp::Add,
                "del" => EditOp::Del,
                _ => {
                    return Err(self.error_at(
                        &t,
                        format!("{context}: expected set, add or del but found '{op}'"),
                    ))
                }
            };
            let (_, name) = self.expect_word(context, "a header name")?;
            let value = match op {
                EditOp::Del => String::new(),
                EditOp::Set | EditOp::Add => self.text_value(context, "a quoted value")?.1,
            };
            let edit = HeaderEdit {
                side,
                op,
                name,
                value,
            };
            edit.validate()
                .map_err(|e| self.error_at_end_of_last(format!("{context}: {e}")))?;
            edits.push(edit);
        }
    }
}

/// Parses `word` as an unsigned integer in `lo..=hi`.
fn number(word: &str, what: &str, lo: u32, hi: u32) -> Result<u32, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected {what} but found '{word}'"));
    }
    match word.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("{word} is out of range: must be {lo}..={hi}")),
    }
}

/// Checks an option name: ASCII letters, digits, `_` and `-`.
fn check_option_name(name: &str) -> Result<(), String> {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "option name '{name}' must be ASCII letters, digits, '_' or '-'"
        ))
    }
}

/// Every block keyword, for "expected one of …" messages.
fn keyword_list() -> String {
    Keyword::ALL.map(Keyword::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive_and_round_trip_their_names() {
        for k in Keyword::ALL {
            assert_eq!(Keyword::from_word(&k.name().to_ascii_uppercase()), Some(k));
        }
        assert_eq!(Keyword::from_word("bogus"), None);
    }

    #[test]
    fn numbers_check_digits_and_range() {
        assert_eq!(number("8", "n", 1, 10), Ok(8));
        assert!(number("0", "n", 1, 10)
            .unwrap_err()
            .contains("out of range"));
        assert!(number("99999999999", "n", 1, 10)
            .unwrap_err()
            .contains("out of range"));
        assert!(number("-1", "n", 0, 10).unwrap_err().contains("expected n"));
        assert!(number("1x", "n", 0, 10).unwrap_err().contains("expected n"));
    }

    #[test]
    fn end_of_counts_characters_of_the_last_line() {
        assert_eq!(end_of(""), (1, 1));
        assert_eq!(end_of("ab\ncé"), (2, 3));
        assert_eq!(end_of("ab\n"), (2, 1));
    }
}
