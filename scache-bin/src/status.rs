//! The status records a daemon writes to Postfix's `master(8)` on
//! descriptor 5.
//!
//! master counts a daemon's completed requests from them (a TAKEN then an
//! AVAIL record); it needs at least one such pair before an abnormal exit
//! not to treat the daemon as broken at start-up ("bad command startup --
//! throttling"). For a service with a process limit of 1, such as this
//! one, master uses them for nothing else.
#![forbid(unsafe_code)]

/// One record on master's status channel (fd 5).
///
/// On the wire: three native-endian 32-bit integers, 12 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRecord {
    /// Process id the daemon claims.
    pub pid: i32,
    /// Generation the daemon claims (from `GENERATION`).
    pub generation: u32,
    /// [`StatusRecord::TAKEN`] or [`StatusRecord::AVAIL`] (other values are
    /// kept as received).
    pub avail: i32,
}

impl StatusRecord {
    /// The daemon is busy serving a request.
    pub const TAKEN: i32 = 0;
    /// The daemon is idle again.
    pub const AVAIL: i32 = 1;
    /// Size of one record on the wire.
    pub const SIZE: usize = 12;

    /// Decodes one record (native endian).
    pub fn from_bytes(b: &[u8; 12]) -> StatusRecord {
        StatusRecord {
            pid: i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            generation: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            avail: i32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    /// Encodes one record (native endian).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.pid.to_ne_bytes());
        b[4..8].copy_from_slice(&self.generation.to_ne_bytes());
        b[8..12].copy_from_slice(&self.avail.to_ne_bytes());
        b
    }
}
