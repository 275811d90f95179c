//! Poller tokens: what a readiness event is about.
//!
//! A token carries its kind in its two low bits and a slab key above them:
//! a client socket (key: the session), a backend connection (key: the
//! connection in the worker's backend slab) or a listener (key: the
//! worker's listener slab). The waker has a token of its own.

use mio::Token;

/// What a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The client socket of session `key`.
    Client(usize),
    /// Backend connection `key`.
    Backend(usize),
    /// Listener `key`.
    Listener(usize),
    /// The worker's waker.
    Waker,
}

const CLIENT: usize = 0;
const BACKEND: usize = 1;
const LISTENER: usize = 2;

/// The token of the waker.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// The token of session `key`'s client socket.
pub(crate) fn client(key: usize) -> Token {
    Token(key << 2 | CLIENT)
}

/// The token of backend connection `id`.
pub(crate) fn backend(id: usize) -> Token {
    Token(id << 2 | BACKEND)
}

/// The token of listener `key`.
pub(crate) fn listener(key: usize) -> Token {
    Token(key << 2 | LISTENER)
}

/// What `token` names.
pub(crate) fn kind(token: Token) -> Kind {
    if token == WAKER {
        return Kind::Waker;
    }
    let key = token.0 >> 2;
    match token.0 & 3 {
        CLIENT => Kind::Client(key),
        LISTENER => Kind::Listener(key),
        _ => Kind::Backend(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for key in [0, 1, 7, usize::MAX >> 3] {
            assert_eq!(kind(client(key)), Kind::Client(key));
            assert_eq!(kind(backend(key)), Kind::Backend(key));
            assert_eq!(kind(listener(key)), Kind::Listener(key));
        }
        assert_eq!(kind(WAKER), Kind::Waker);
    }
}
