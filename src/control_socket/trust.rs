//! Who may use the control socket, checked on both sides.
//!
//! The socket carries the whole configuration (`cookie_key` included) and
//! takes every change, so a local user must neither reach a daemon that is
//! not theirs nor trick a user's `tcpvsadm` into talking to a socket they
//! planted. Three checks, each enforced here:
//!
//! * **the directory** holding the socket is owned by the daemon's user or
//!   root, is a real directory (not a symbolic link), and is not writable
//!   by others unless sticky, so nobody else can put a socket in its place.
//!   The default directory is created with mode `0700`;
//! * **a socket file already at the path** that belongs to another user is
//!   refused, never used or replaced;
//! * **the peer's credentials** (`SO_PEERCRED`, from the kernel): the
//!   daemon serves only clients of its own user and root, and a client
//!   talks only to a daemon of its own user or root.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use thiserror::Error;

/// Why a directory may not hold the control socket.
#[derive(Debug, Error)]
pub enum UntrustedPath {
    /// The path is a symbolic link.
    #[error("{path} is a symbolic link")]
    Symlink {
        /// The path.
        path: std::path::PathBuf,
    },
    /// The path is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: std::path::PathBuf,
    },
    /// Another user owns it.
    #[error("{path} belongs to uid {owner}, not to uid {uid} or root")]
    Owner {
        /// The path.
        path: std::path::PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// Group or others may write it and it is not sticky: anyone with that
    /// right could replace the socket.
    #[error("{path} is writable by other users (mode {mode:o}) and not sticky")]
    Writable {
        /// The path.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A system call failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: std::path::PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a peer running as `uid` may be trusted: this process's own user
/// or root.
pub fn is_trusted_uid(uid: u32) -> bool {
    uid == effective_uid() || uid == 0
}

/// The uid of the process at the other end of `stream`, as the kernel
/// recorded it when the connection was made (`SO_PEERCRED`).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a ucred.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Makes sure `dir` may hold the control socket: creates it with mode
/// `0700` if it is missing (its parent must exist), else checks that it is
/// a real directory owned by this user or root and not writable by others
/// unless sticky.
pub fn prepare_directory(dir: &Path) -> Result<(), UntrustedPath> {
    let io_err = |action| {
        move |source| UntrustedPath::Io {
            action,
            path: dir.to_path_buf(),
            source,
        }
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have narrowed the mode further; never wider.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("set permissions of"))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create directory")(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_err("inspect"))?;
    let path = dir.to_path_buf();
    if meta.file_type().is_symlink() {
        return Err(UntrustedPath::Symlink { path });
    }
    if !meta.is_dir() {
        return Err(UntrustedPath::NotADirectory { path });
    }
    if !is_trusted_uid(meta.uid()) {
        return Err(UntrustedPath::Owner {
            path,
            owner: meta.uid(),
            uid: effective_uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(UntrustedPath::Writable { path, mode });
    }
    Ok(())
}
