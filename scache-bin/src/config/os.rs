//! What the configuration asks the operating system: the host name and the
//! user and group databases. The only system calls of `config` are here.

/// The local host name from `gethostname()` (empty if that fails).
pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
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
