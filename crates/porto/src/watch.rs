//! `porto up --watch`: rebuild a service when its sources change and swap
//! the new component in, without dropping requests or touching the others.
//!
//! What to watch comes from cargo itself: the dep-info file it writes next
//! to each `.wasm` (`user_service.d`) lists every source file the build
//! read, including path dependencies such as service-kit. porto watches
//! the directories holding them, so a change to shared code rebuilds every
//! service that uses it. Events are debounced, builds run one at a time,
//! and a failed build leaves the running component in place.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher};
use porto_host::{Reload, Stack};
use tokio::sync::{mpsc, watch};

use crate::app::ComponentSource;
use crate::builder;

/// Quiet time after the last change before building: an editor's save is
/// often several events.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A service built from a cargo package, and the files its build read.
struct Watched {
    name: String,
    dir: PathBuf,
    sources: HashSet<PathBuf>,
    /// The directories holding `sources`: what the watcher watches.
    directories: BTreeSet<PathBuf>,
}

impl Watched {
    fn new(name: &str, dir: &Path, wasm: &Path) -> Self {
        let mut sources = dep_info(wasm);
        sources.insert(dir.join("Cargo.toml"));
        let directories = sources
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            sources,
            directories,
        }
    }

    /// A change to a file this build read, or a new source file next to
    /// them (a new module).
    fn affected_by(&self, path: &Path) -> bool {
        if self.sources.contains(path) {
            return true;
        }
        let is_source = path
            .extension()
            .is_some_and(|e| e == "rs" || e == "toml" || e == "wit");
        is_source
            && path
                .parent()
                .is_some_and(|dir| self.directories.contains(dir))
    }
}

/// The prerequisites listed in cargo's dep-info file for `wasm`
/// (`target: dep dep…`, spaces in paths escaped with `\`).
pub fn dep_info(wasm: &Path) -> HashSet<PathBuf> {
    let Ok(text) = std::fs::read_to_string(wasm.with_extension("d")) else {
        return HashSet::new();
    };
    let Some((_, deps)) = text.lines().next().and_then(|l| l.split_once(": ")) else {
        return HashSet::new();
    };
    let mut files = HashSet::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    files.insert(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        files.insert(PathBuf::from(current));
    }
    files
}

pub struct WatchSetup {
    pub stack: Stack,
    /// (service, build context, the `.wasm` built at start-up).
    pub services: Vec<(String, ComponentSource, PathBuf)>,
    /// Told what the watcher does, for the person running porto.
    pub report: Box<dyn Fn(WatchEvent) + Send + Sync>,
}

/// What the watcher did.
pub enum WatchEvent {
    /// No service is built from sources.
    NothingToWatch,
    Watching {
        directories: usize,
        services: Vec<String>,
    },
    Reloaded {
        service: String,
        took: Duration,
        digest: String,
    },
    /// The build gave the component already running.
    Unchanged { service: String },
    /// The build failed; the previous one still serves.
    Failed {
        service: String,
        error: anyhow::Error,
    },
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NothingToWatch => {
                f.write_str("porto: --watch: no service is built from sources; nothing to watch")
            }
            Self::Watching {
                directories,
                services,
            } => write!(
                f,
                "porto: watching {directories} directories for {}",
                services.join(", ")
            ),
            Self::Reloaded {
                service,
                took,
                digest,
            } => write!(
                f,
                "porto: reloaded {service} in {:.1}s (wasm sha256:{})",
                took.as_secs_f64(),
                &digest[..16.min(digest.len())]
            ),
            Self::Unchanged { service } => write!(f, "porto: {service} unchanged"),
            Self::Failed { service, error } => write!(
                f,
                "porto: rebuilding {service} failed; still serving the previous build\n{error:#}"
            ),
        }
    }
}

/// The file watcher, set up and watching; [`Watching::run`] acts on what
/// it sees.
pub struct Watching {
    setup: WatchSetup,
    watched: Vec<Watched>,
    watcher: notify::RecommendedWatcher,
    directories: BTreeSet<PathBuf>,
    changes: mpsc::UnboundedReceiver<PathBuf>,
}

/// Starts watching every service built from sources, before porto says
/// it is ready, so `porto: watching` always comes first. `None` when no
/// service is built from sources.
pub fn start(setup: WatchSetup) -> anyhow::Result<Option<Watching>> {
    let watched: Vec<Watched> = setup
        .services
        .iter()
        .filter_map(|(name, source, wasm)| match source {
            ComponentSource::Cargo { dir } => Some(Watched::new(name, dir, wasm)),
            _ => None,
        })
        .collect();
    if watched.is_empty() {
        (setup.report)(WatchEvent::NothingToWatch);
        return Ok(None);
    }
    let (events, changes) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = events.send(path);
            }
        }
    })
    .context("--watch: starting the file watcher")?;
    let directories: BTreeSet<PathBuf> = watched
        .iter()
        .flat_map(|w| w.directories.iter().cloned())
        .collect();
    for dir in &directories {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("--watch: watching {}", dir.display()))?;
    }
    (setup.report)(WatchEvent::Watching {
        directories: directories.len(),
        services: watched.iter().map(|w| w.name.clone()).collect(),
    });
    Ok(Some(Watching {
        setup,
        watched,
        watcher,
        directories,
        changes,
    }))
}

impl Watching {
    /// Rebuilds and swaps in what changes, until `stop` fires.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let Self {
            setup,
            mut watched,
            mut watcher,
            mut directories,
            mut changes,
        } = self;
        loop {
            let first = tokio::select! {
                path = changes.recv() => match path {
                    Some(path) => path,
                    None => return,
                },
                _ = stop.changed() => return,
            };
            let mut changed = vec![first];
            while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                changed.push(path);
            }
            let affected: Vec<usize> = (0..watched.len())
                .filter(|&i| changed.iter().any(|p| watched[i].affected_by(p)))
                .collect();
            for i in affected {
                let service = &watched[i];
                let name = service.name.clone();
                match rebuild(&setup.stack, &service.name, &service.dir).await {
                    Ok(Some((wasm, took, digest))) => {
                        (setup.report)(WatchEvent::Reloaded {
                            service: name.clone(),
                            took,
                            digest,
                        });
                        watched[i] = Watched::new(&name, &service.dir, &wasm);
                        for dir in &watched[i].directories {
                            if directories.insert(dir.clone()) {
                                let _ = watcher.watch(dir, RecursiveMode::NonRecursive);
                            }
                        }
                    }
                    Ok(None) => (setup.report)(WatchEvent::Unchanged { service: name }),
                    Err(error) => (setup.report)(WatchEvent::Failed {
                        service: name,
                        error,
                    }),
                }
            }
        }
    }
}

/// Builds, compiles and swaps in one service. `None` when the build
/// produced the component already running.
async fn rebuild(
    stack: &Stack,
    name: &str,
    dir: &Path,
) -> anyhow::Result<Option<(PathBuf, Duration, String)>> {
    let started = Instant::now();
    let (stack, name, dir) = (stack.clone(), name.to_string(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let built = builder::build(&name, &dir)?;
        let wasm = std::fs::read(&built.wasm)
            .with_context(|| format!("reading {}", built.wasm.display()))?;
        Ok(match stack.reload(&name, &wasm)? {
            Reload::Unchanged => None,
            Reload::Swapped { digest } => Some((built.wasm, started.elapsed(), digest)),
        })
    })
    .await
    .context("build task")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_every_prerequisite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = dir.path().join("user_service.wasm");
        std::fs::write(
            wasm.with_extension("d"),
            "/t/user_service.wasm: /src/lib.rs /src/my\\ dir/a.rs /kit/src/lib.rs\n",
        )
        .expect("write");
        let deps = dep_info(&wasm);
        assert_eq!(deps.len(), 3);
        assert!(deps.contains(Path::new("/src/my dir/a.rs")));
        let watched = Watched::new("user-service", Path::new("/src"), &wasm);
        assert!(watched.affected_by(Path::new("/kit/src/lib.rs")));
        assert!(watched.affected_by(Path::new("/src/new_module.rs")));
        assert!(!watched.affected_by(Path::new("/src/notes.txt")));
        assert!(!watched.affected_by(Path::new("/elsewhere/lib.rs")));
    }
}
