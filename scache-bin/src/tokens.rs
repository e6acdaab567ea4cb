//! Readiness tokens: what an epoll event is about, in one `u64`.
//!
//! Cached sessions carry their [`SessionHandle`] with the top bit set (a
//! handle's own top bit is always clear); every other kind has its tag in
//! the top byte and an index below.
#![forbid(unsafe_code)]

use scache_core::SessionHandle;

const KIND_SHIFT: u32 = 56;
const KIND_LISTENER: u64 = 1;
const KIND_CLIENT: u64 = 2;
const KIND_STATUS: u64 = 3;
const KIND_SIGNAL: u64 = 4;
const SESSION_BIT: u64 = 1 << 63;
const VALUE_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// What a readiness event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Listening socket number `n` (master may pass several).
    Listener(usize),
    /// The client connection in slab slot `n`.
    Client(usize),
    /// Master's status socket (readable means master went away).
    Status,
    /// The signal descriptor.
    Signal,
    /// A cached session's descriptor (dead-peer watch).
    Session(SessionHandle),
}

impl Token {
    /// The token as epoll's user data.
    pub fn to_u64(self) -> u64 {
        let tagged = |kind: u64, value: usize| (kind << KIND_SHIFT) | (value as u64 & VALUE_MASK);
        match self {
            Token::Listener(n) => tagged(KIND_LISTENER, n),
            Token::Client(n) => tagged(KIND_CLIENT, n),
            Token::Status => tagged(KIND_STATUS, 0),
            Token::Signal => tagged(KIND_SIGNAL, 0),
            Token::Session(handle) => SESSION_BIT | handle.as_u64(),
        }
    }

    /// The token epoll's user data stands for (`None`: not one of ours).
    #[inline]
    pub fn from_u64(data: u64) -> Option<Token> {
        // Clients first: nearly every event is theirs.
        if data >> KIND_SHIFT == KIND_CLIENT {
            return Some(Token::Client((data & VALUE_MASK) as usize));
        }
        if data & SESSION_BIT != 0 {
            return Some(Token::Session(SessionHandle::from_u64(data & !SESSION_BIT)));
        }
        let value = (data & VALUE_MASK) as usize;
        match data >> KIND_SHIFT {
            KIND_LISTENER => Some(Token::Listener(value)),
            KIND_CLIENT => Some(Token::Client(value)),
            KIND_STATUS => Some(Token::Status),
            KIND_SIGNAL => Some(Token::Signal),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let handle = SessionHandle::from_u64((7 << 32) | 9);
        for token in [
            Token::Listener(0),
            Token::Listener(3),
            Token::Client(0),
            Token::Client(123_456),
            Token::Status,
            Token::Signal,
            Token::Session(handle),
            Token::Session(SessionHandle::from_u64(0)),
        ] {
            assert_eq!(Token::from_u64(token.to_u64()), Some(token), "{token:?}");
        }
        assert_eq!(Token::from_u64(0), None);
        assert_eq!(Token::from_u64(9 << KIND_SHIFT), None);
    }
}
