//! What the configuration asks the operating system: the host name and the
//! user and group databases. The only system calls of `config` are here.

/// The local host name from `gethostname()` (empty if that fails).
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is a valid writable buffer of the length we pass;
    // gethostname writes at most that many bytes and does not keep the
    // pointer.
    let rc = unsafe { nix::libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A user's IDs as resolved for `mail_owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user name.
    pub name: String,
    /// Its user ID.
    pub uid: u32,
    /// Its primary group ID.
    pub gid: u32,
}

/// Looks up a user by name in the password database; `None` when there is
/// no such user or the lookup fails.
pub(super) fn user_by_name(name: &str) -> Option<Owner> {
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(Owner {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// Looks up a group's ID by name in the group database; `None` when there
/// is no such group or the lookup fails.
pub(super) fn group_id_by_name(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}
