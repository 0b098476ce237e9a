//! The embedded default (§10): a private PostgreSQL cluster managed with PostgreSQL's own
//! `initdb` and `pg_ctl`.
//!
//! The cluster listens only on a unix socket inside its own folder, so it never competes for a
//! TCP port. PostgreSQL refuses to run as root; when we are root the cluster belongs to the
//! `postgres` system user and its tools run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Port number in the socket's file name (`.s.PGSQL.<port>`); no TCP port is opened.
const SOCKET_PORT: u16 = 5432;
/// Longest unix socket path the kernel takes is 107 bytes; leave room for the file name.
const MAX_SOCKET_DIR_BYTES: usize = 80;
const SERVICE_USER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were found neither on PATH nor under \
         /usr/lib/postgresql/*/bin; install PostgreSQL's server package or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "running as root, the cluster must belong to the `{SERVICE_USER}` system user, which \
         does not exist; create it (install PostgreSQL's server package) or run as another user"
    )]
    NoServiceUser,
    #[error(
        "the `{SERVICE_USER}` user cannot reach {0}; as root, choose a LEDGER_DATA_DIR it can \
         traverse (e.g. under /var/lib or /tmp), or run as a normal user"
    )]
    Unreachable(PathBuf),
    #[error("{command} failed: {output}")]
    CommandFailed { command: String, output: String },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How hard the cluster works to survive a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// PostgreSQL's defaults: fsync, synchronous commit.
    Full,
    /// No fsync: only for throwaway test clusters.
    Throwaway,
}

#[derive(Debug)]
pub struct EmbeddedCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    as_service_user: bool,
    started_here: bool,
    /// Set once `stop` ran, so that dropping the value does not stop the cluster again.
    stopped: std::sync::atomic::AtomicBool,
    /// The owner's lock on `owner.lock` (an `flock`, released by the kernel when the process
    /// dies, however it dies): the one process that starts, adopts and stops the cluster.
    _owner_lock: Option<std::fs::File>,
}

impl EmbeddedCluster {
    /// Initialises the cluster under `root` if it does not exist yet, and starts it unless it is
    /// already running. The first `ledger` process on the folder owns the cluster (it holds the
    /// owner lock): it starts it, or adopts one a crashed owner left running, and stops it on
    /// shutdown. Later processes on the same folder use the cluster and leave it running.
    pub fn start(root: &Path, durability: Durability) -> Result<EmbeddedCluster, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::BinariesNotFound)?;
        let as_service_user = is_root();
        let root = absolute(root)?;
        create_private_dir(&root)?;
        let data_dir = root.join("pg");
        let socket_dir = choose_socket_dir(&root)?;
        let mut cluster = EmbeddedCluster {
            bin_dir,
            log_file: root.join("postgres.log"),
            data_dir,
            socket_dir,
            as_service_user,
            started_here: false,
            stopped: std::sync::atomic::AtomicBool::new(false),
            _owner_lock: take_owner_lock(&root)?,
        };
        let owner = cluster._owner_lock.is_some();
        if as_service_user {
            cluster.hand_to_service_user(&root)?;
        }
        if !cluster.data_dir.exists() {
            cluster.initdb_atomically(&root)?;
        }
        if cluster.is_running() {
            // Left running by an owner that crashed: adopted, so that it is stopped on shutdown.
            cluster.started_here = owner;
            return Ok(cluster);
        }
        if owner {
            cluster.remove_stale_pid_file()?;
        }
        cluster.pg_ctl_start(durability)?;
        cluster.started_here = true;
        Ok(cluster)
    }

    /// `initdb` into a fresh `pg.initializing`, renamed to `pg` once complete: a first start
    /// killed during `initdb` leaves no data folder that looks initialised, and the next start
    /// initialises again.
    fn initdb_atomically(&self, root: &Path) -> Result<(), EmbeddedError> {
        let partial = root.join("pg.initializing");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| EmbeddedError::Io { path, source }
        };
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        self.initdb(&partial)?;
        std::fs::rename(&partial, &self.data_dir).map_err(io(&self.data_dir))
    }

    /// After a power cut, `postmaster.pid` names a process that no longer exists, or whose pid
    /// another process now has, which PostgreSQL would take for a live server. Only the owner,
    /// which knows no server of this folder runs, removes it.
    fn remove_stale_pid_file(&self) -> Result<(), EmbeddedError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        if !pid_file.exists() {
            return Ok(());
        }
        tracing::warn!(
            path = %pid_file.display(),
            "removing the stale postmaster.pid of a cluster that is not running \
             (a crash or power cut); PostgreSQL recovers from its WAL on start"
        );
        std::fs::remove_file(&pid_file).map_err(|source| EmbeddedError::Io {
            path: pid_file,
            source,
        })
    }

    /// Where clients connect: the socket directory (libpq's `host` may be a directory).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        SOCKET_PORT
    }

    pub fn superuser(&self) -> &'static str {
        SERVICE_USER
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A tokio-postgres configuration for `database` on this cluster.
    pub fn pg_config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(SOCKET_PORT)
            .user(SERVICE_USER)
            .dbname(database);
        config
    }

    /// Stops the cluster if this process started it (once; dropping the value stops it too).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        use std::sync::atomic::Ordering;
        if !self.started_here || self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.run_tool(
            "pg_ctl",
            &["-D", path_str(&self.data_dir), "-m", "fast", "-w", "stop"],
        )
    }

    /// Lets go of the cluster as a process killed at this point would: the owner lock is
    /// released and the server keeps running. For tests of what the next start does.
    pub fn abandon(mut self) {
        self._owner_lock.take();
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes the cluster stop and its folder disappear when this process exits, however it
    /// exits: a watchdog shell reads our end of a pipe and cleans up at end of file.
    /// For throwaway clusters (tests, benchmarks).
    pub fn remove_when_process_exits(
        &self,
        root: &Path,
    ) -> Result<std::process::ChildStdin, EmbeddedError> {
        let stop = self.tool_command_line(
            "pg_ctl",
            &["-D", path_str(&self.data_dir), "-m", "immediate", "stop"],
        );
        let script = format!(
            "cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}",
            shell_quote(path_str(root))
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EmbeddedError::Io {
                path: root.to_owned(),
                source,
            })?;
        Ok(child.stdin.take().expect("stdin was piped"))
    }

    fn hand_to_service_user(&self, root: &Path) -> Result<(), EmbeddedError> {
        if !user_exists(SERVICE_USER) {
            return Err(EmbeddedError::NoServiceUser);
        }
        for dir in [root, &self.socket_dir] {
            let status = Command::new("chown")
                .args([&format!("{SERVICE_USER}:"), path_str(dir)])
                .status()
                .map_err(|source| EmbeddedError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            let reachable = status.success()
                && Command::new("runuser")
                    .args(["-u", SERVICE_USER, "--", "test", "-w", path_str(dir)])
                    .status()
                    .is_ok_and(|status| status.success());
            if !reachable {
                return Err(EmbeddedError::Unreachable(dir.to_owned()));
            }
        }
        Ok(())
    }

    fn initdb(&self, data_dir: &Path) -> Result<(), EmbeddedError> {
        self.run_tool(
            "initdb",
            &[
                "-D",
                path_str(data_dir),
                "-U",
                SERVICE_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
        )
    }

    /// Whether the server of `postmaster.pid` runs: its pid is alive and is a `postgres`
    /// process (after a power cut the pid may belong to anything else).
    fn is_running(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<u32>().ok())
        else {
            return false;
        };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|name| name.trim_end() == "postgres");
        is_postgres && !is_dead(pid)
    }

    fn pg_ctl_start(&self, durability: Durability) -> Result<(), EmbeddedError> {
        // pg_ctl hands these options to a shell: the socket folder is quoted. The socket is
        // for its owner only (trust authentication: whoever reaches it is a superuser).
        let mut options = format!(
            "-c listen_addresses='' -k {} -c unix_socket_permissions=0700 -p {SOCKET_PORT} \
             -c max_connections=200",
            shell_quote(path_str(&self.socket_dir))
        );
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        self.run_tool(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data_dir),
                "-l",
                path_str(&self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_service_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVICE_USER, "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EmbeddedError::Io {
                path: program.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(EmbeddedError::CommandFailed {
            command: format!("{tool} {}", args.join(" ")),
            output: text.trim().to_owned(),
        })
    }

    fn tool_command_line(&self, tool: &str, args: &[&str]) -> String {
        let program = self.bin_dir.join(tool);
        let prefix = if self.as_service_user {
            format!("runuser -u {SERVICE_USER} -- ")
        } else {
            String::new()
        };
        let quoted: Vec<String> = args.iter().map(|arg| shell_quote(arg)).collect();
        format!(
            "{prefix}{} {}",
            shell_quote(path_str(&program)),
            quoted.join(" ")
        )
    }
}

/// A cluster this process started is stopped when the value goes away without `stop` (a startup
/// that failed after the cluster came up), so that no server is left running unowned.
impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("could not stop the embedded PostgreSQL cluster: {error}");
        }
    }
}

/// Whether a process is a zombie (`Z`) or dead (`X`): killed, not yet reaped by its parent. A
/// killed postmaster whose parent was not an init that reaps stays a zombie, still named
/// `postgres`, and must not be taken for a running server.
fn is_dead(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // `pid (comm) state …`: the state follows the last `)` (comm may contain spaces or parens).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X') | None)
}

/// The owner lock of the folder, or `None` when another live process holds it.
fn take_owner_lock(root: &Path) -> Result<Option<std::fs::File>, EmbeddedError> {
    use std::os::unix::io::AsRawFd;
    let path = root.join("owner.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| EmbeddedError::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a file descriptor this function owns; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(locked.then_some(file))
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    // Newest major version first.
    debian.sort_by_key(|dir| {
        std::cmp::Reverse(
            dir.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok()),
        )
    });
    on_path
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn choose_socket_dir(root: &Path) -> Result<PathBuf, EmbeddedError> {
    if path_str(root).len() <= MAX_SOCKET_DIR_BYTES {
        return Ok(root.to_owned());
    }
    // A deep data folder: put the socket in a short folder named after it.
    let digest = crate::audit::Hash32::sha256(path_str(root).as_bytes()).to_hex();
    let dir = std::env::temp_dir().join(format!("ledger-{}", &digest[..16]));
    // A shared folder: someone else may have put something at that name first.
    if std::fs::symlink_metadata(&dir).is_ok_and(|metadata| !metadata.is_dir()) {
        return Err(EmbeddedError::Io {
            path: dir,
            source: std::io::Error::other("exists and is not a folder (a symlink?); remove it"),
        });
    }
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Creates the folder (and its parents) and makes it accessible to its owner only: the cluster
/// trusts whoever reaches its socket.
fn create_private_dir(dir: &Path) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::PermissionsExt;
    let io_error = |source| EmbeddedError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_error)
}

/// `text` as one word for `sh`: in single quotes, each `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(|source| EmbeddedError::Io {
        path: path.to_owned(),
        source,
    })
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("data paths are UTF-8")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
