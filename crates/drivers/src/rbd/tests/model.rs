//! A small in-memory RBD pool that answers the driver's `rbd` command lines
//! the way Ceph 16 does (same exit codes, error texts and JSON shapes as
//! the captures under `fixtures/`), with clone format v1 rules: only
//! protected snapshots can be cloned, a snapshot with clones cannot be
//! unprotected, an image with snapshots cannot be removed. Clone parents
//! are referenced by image id, so renames keep them, as in RBD.
//!
//! It lets the driver's multi-step behaviours (hidden deletion chains,
//! flattening at the clone depth) be checked without a cluster; the system
//! test checks the same against real Ceph.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use clinker_exec::{Command, FakeRunner, Output};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub(crate) struct Snap {
    pub(crate) protected: bool,
    size: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) name: String,
    pub(crate) size: u64,
    object_size: u64,
    /// (parent image id, parent snapshot).
    pub(crate) parent: Option<(u64, String)>,
    pub(crate) snaps: BTreeMap<String, Snap>,
    pub(crate) trashed: bool,
    /// An open client (an attached volume).
    pub(crate) watched: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Pool {
    next_id: u64,
    pub(crate) images: BTreeMap<u64, Image>,
}

fn fail(code: i32, stderr: &str) -> Output {
    Output::failed(code, format!("{stderr}\n"))
}

fn enoent(what: &str) -> Output {
    fail(
        2,
        &format!("rbd: error opening image {what}: (2) No such file or directory"),
    )
}

fn mib(text: &str) -> u64 {
    text.trim_end_matches('M').parse::<u64>().unwrap_or(0) << 20
}

impl Pool {
    fn id_of(&self, name: &str) -> Option<u64> {
        self.images
            .iter()
            .find(|(_, i)| i.name == name && !i.trashed)
            .map(|(id, _)| *id)
    }

    /// The live image named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Image> {
        self.id_of(name).and_then(|id| self.images.get(&id))
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Image> {
        let id = self.id_of(name)?;
        self.images.get_mut(&id)
    }

    /// Names of the live images, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .images
            .values()
            .filter(|i| !i.trashed)
            .map(|i| i.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Names of the images in the trash.
    pub(crate) fn trash(&self) -> Vec<String> {
        self.images
            .values()
            .filter(|i| i.trashed)
            .map(|i| i.name.clone())
            .collect()
    }

    pub(crate) fn parent_name(&self, name: &str) -> Option<(String, String)> {
        let (id, snap) = self.get(name)?.parent.clone()?;
        Some((self.images.get(&id)?.name.clone(), snap))
    }

    fn children(&self, id: u64, snap: &str) -> Vec<&Image> {
        self.images
            .values()
            .filter(|i| {
                i.parent
                    .as_ref()
                    .is_some_and(|(p, s)| *p == id && s == snap)
            })
            .collect()
    }

    /// Adds an image directly (test set-up).
    pub(crate) fn add(&mut self, name: &str, size: u64, parent: Option<(&str, &str)>) {
        let parent = parent.and_then(|(p, s)| Some((self.id_of(p)?, s.to_owned())));
        self.next_id += 1;
        self.images.insert(
            self.next_id,
            Image {
                name: name.to_owned(),
                size,
                object_size: 4 << 20,
                parent,
                snaps: BTreeMap::new(),
                trashed: false,
                watched: false,
            },
        );
    }

    /// Adds a snapshot directly (test set-up).
    pub(crate) fn add_snap(&mut self, image: &str, snap: &str, protected: bool) {
        if let Some(i) = self.get_mut(image) {
            let size = i.size;
            i.snaps.insert(snap.to_owned(), Snap { protected, size });
        }
    }

    fn split_snap(spec: &str) -> (&str, &str) {
        let spec = spec.split_once('/').map_or(spec, |(_, rest)| rest);
        spec.split_once('@').unwrap_or((spec, ""))
    }

    fn image_name(spec: &str) -> &str {
        spec.split_once('/').map_or(spec, |(_, rest)| rest)
    }

    fn info_json(&self, image: &Image) -> Value {
        let mut v = json!({
            "name": image.name, "id": "0", "size": image.size, "objects": 0,
            "order": 22, "object_size": image.object_size, "snapshot_count": image.snaps.len(),
            "format": 2, "features": ["layering"],
        });
        if let Some((pid, snap)) = &image.parent
            && let Some(parent) = self.images.get(pid)
        {
            v["parent"] = json!({"pool": "volumes", "pool_namespace": "", "image": parent.name,
                "id": pid.to_string(), "snapshot": snap, "trash": parent.trashed, "overlap": image.size});
        }
        v
    }

    /// Answers one `rbd` command line (connection options already removed).
    #[allow(clippy::too_many_lines)] // one arm per subcommand reads best
    fn rbd(&mut self, words: &[String]) -> Output {
        let mut positional = Vec::new();
        let mut size = None;
        let mut object_size = None;
        let mut long = false;
        let mut it = words.iter();
        while let Some(w) = it.next() {
            match w.as_str() {
                "--size" => size = it.next().map(|s| mib(s)),
                "--object-size" => object_size = it.next().map(|s| mib(s)),
                "--format" => {
                    it.next();
                }
                "--long" => long = true,
                "--no-progress" | "--all" => {}
                other => positional.push(other.to_owned()),
            }
        }
        let p: Vec<&str> = positional.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["create", spec] => {
                let name = Self::image_name(spec);
                if self.id_of(name).is_some() {
                    return fail(17, "rbd: create error: (17) File exists");
                }
                self.add(name, size.unwrap_or(0), None);
                if let (Some(os), Some(i)) = (object_size, self.get_mut(name)) {
                    i.object_size = os;
                }
                Output::ok("")
            }
            ["info", spec] => match self.get(Self::image_name(spec)) {
                Some(i) => Output::ok(self.info_json(i).to_string()),
                None => enoent(spec),
            },
            ["snap", "ls", spec] => match self.get(Self::image_name(spec)) {
                Some(i) => Output::ok(
                    Value::Array(
                        i.snaps
                            .iter()
                            .map(|(n, s)| {
                                json!({"id": 1, "name": n, "size": s.size,
                                "protected": s.protected.to_string(), "timestamp": "now"})
                            })
                            .collect(),
                    )
                    .to_string(),
                ),
                None => enoent(spec),
            },
            ["snap", op, spec] => {
                let (name, snap) = Self::split_snap(spec);
                let Some(id) = self.id_of(name) else {
                    return enoent(name);
                };
                let has_children = !self.children(id, snap).is_empty();
                let Some(image) = self.images.get_mut(&id) else {
                    return enoent(name);
                };
                let size = image.size;
                match (*op, image.snaps.get_mut(snap)) {
                    ("create", Some(_)) => {
                        fail(17, "rbd: failed to create snapshot: (17) File exists")
                    }
                    ("create", None) => {
                        image.snaps.insert(
                            snap.to_owned(),
                            Snap {
                                protected: false,
                                size,
                            },
                        );
                        Output::ok("")
                    }
                    ("protect", Some(s)) if s.protected => {
                        fail(16, "rbd: snap is already protected")
                    }
                    ("protect", Some(s)) => {
                        s.protected = true;
                        Output::ok("")
                    }
                    ("unprotect", Some(s)) if !s.protected => {
                        fail(22, "rbd: snap is already unprotected")
                    }
                    ("unprotect", Some(_)) if has_children => fail(
                        16,
                        "librbd::SnapshotUnprotectRequest: cannot unprotect: at least 1 \
                         child(ren) [x] in pool 'volumes'\nrbd: unprotecting snap failed: (16) \
                         Device or resource busy",
                    ),
                    ("unprotect", Some(s)) => {
                        s.protected = false;
                        Output::ok("")
                    }
                    ("unprotect", None) => fail(
                        2,
                        "rbd: unprotecting snap failed: (2) No such file or directory",
                    ),
                    ("rm", Some(s)) if s.protected => fail(
                        16,
                        "librbd::Operations: snapshot is protected\nrbd: snapshot 'x' is \
                         protected from removal.",
                    ),
                    ("rm", Some(_)) => {
                        image.snaps.remove(snap);
                        Output::ok("")
                    }
                    ("rm", None) => fail(
                        2,
                        "rbd: failed to remove snapshot: (2) No such file or directory",
                    ),
                    _ => fail(22, "rbd: unexpected snap command"),
                }
            }
            ["children", spec] => {
                let (name, snap) = Self::split_snap(spec);
                let Some(id) = self.id_of(name) else {
                    return enoent(name);
                };
                let kids: Vec<Value> = self
                    .children(id, snap)
                    .iter()
                    .map(|c| {
                        json!({"pool": "volumes", "pool_namespace": "", "image": c.name,
                        "id": "0", "trash": c.trashed})
                    })
                    .collect();
                Output::ok(Value::Array(kids).to_string())
            }
            ["clone", src, dst] => {
                let (name, snap) = Self::split_snap(src);
                let dst = Self::image_name(dst);
                let Some(id) = self.id_of(name) else {
                    return enoent(name);
                };
                let Some(s) = self.images.get(&id).and_then(|i| i.snaps.get(snap)) else {
                    return fail(2, "rbd: clone error: (2) No such file or directory");
                };
                if !s.protected {
                    return fail(22, "rbd: clone error: (22) Invalid argument");
                }
                if self.id_of(dst).is_some() {
                    return fail(17, "rbd: clone error: (17) File exists");
                }
                let size = s.size;
                self.add(dst, size, None);
                if let Some(i) = self.get_mut(dst) {
                    i.parent = Some((id, snap.to_owned()));
                    i.object_size = object_size.unwrap_or(4 << 20);
                }
                Output::ok("")
            }
            ["flatten", spec] => match self.get_mut(Self::image_name(spec)) {
                Some(i) if i.parent.is_none() => fail(
                    22,
                    "rbd: flatten error: librbd::Operations: image has no parent\n(22) Invalid \
                     argument",
                ),
                Some(i) => {
                    i.parent = None;
                    Output::ok("")
                }
                None => enoent(spec),
            },
            ["resize", spec] => match self.get_mut(Self::image_name(spec)) {
                Some(i) if size.unwrap_or(0) < i.size => fail(
                    22,
                    "rbd: shrinking an image is only allowed with the --allow-shrink flag",
                ),
                Some(i) => {
                    i.size = size.unwrap_or(0);
                    Output::ok("")
                }
                None => enoent(spec),
            },
            ["rm", spec] => {
                let name = Self::image_name(spec);
                let Some(id) = self.id_of(name) else {
                    return fail(2, "rbd: delete error: (2) No such file or directory");
                };
                let image = &self.images[&id];
                if !image.snaps.is_empty() {
                    return fail(
                        39,
                        "rbd: image has snapshots - these must be deleted with 'rbd snap purge' \
                         before the image can be removed.",
                    );
                }
                if image.watched {
                    return fail(
                        16,
                        "rbd: error: image still has watchers\nThis means the image is still \
                         open or the client using it crashed.",
                    );
                }
                self.images.remove(&id);
                Output::ok("")
            }
            ["trash", "mv", spec] => match self.get_mut(Self::image_name(spec)) {
                Some(i) => {
                    i.trashed = true;
                    Output::ok("")
                }
                None => enoent(spec),
            },
            ["rename", from, to] => {
                let (from, to) = (Self::image_name(from), Self::image_name(to));
                if self.id_of(to).is_some() {
                    return fail(17, "rbd: rename error: (17) File exists");
                }
                match self.get_mut(from) {
                    Some(i) => {
                        to.clone_into(&mut i.name);
                        Output::ok("")
                    }
                    None => fail(2, "rbd: rename error: (2) No such file or directory"),
                }
            }
            ["cp", src, dst] => {
                let (src, dst) = (Self::image_name(src), Self::image_name(dst));
                let Some(size) = self.get(src).map(|i| i.size) else {
                    return enoent(src);
                };
                if self.id_of(dst).is_some() {
                    return fail(17, "rbd: copy failed: (17) File exists");
                }
                self.add(dst, size, None);
                Output::ok("")
            }
            ["ls", _pool] if long => {
                let mut entries = Vec::new();
                for i in self.images.values().filter(|i| !i.trashed) {
                    entries.push(json!({"image": i.name, "id": "0", "size": i.size, "format": 2}));
                    for (n, s) in &i.snaps {
                        entries.push(json!({"image": i.name, "id": "0", "snapshot": n,
                            "snapshot_id": 1, "size": s.size, "format": 2}));
                    }
                }
                Output::ok(Value::Array(entries).to_string())
            }
            ["ls", _pool] => Output::ok(json!(self.names()).to_string()),
            _ => fail(22, &format!("rbd: unknown command {p:?}")),
        }
    }
}

/// Connection options every command carries; skipped by the model.
const CONNECTION_OPTIONS: &[&str] = &[
    "--id",
    "--cluster",
    "--conf",
    "--keyring",
    "--client_mount_timeout",
    "--rados_mon_op_timeout",
    "--rados_osd_op_timeout",
];

fn without_connection_options(cmd: &Command) -> Vec<String> {
    let mut words = Vec::new();
    let mut it = cmd.args.iter();
    while let Some(w) = it.next() {
        if CONNECTION_OPTIONS.contains(&w.as_str()) {
            it.next();
        } else {
            words.push(w.clone());
        }
    }
    words
}

/// A fake cluster: the pool model behind `rbd`, captured outputs behind
/// `ceph`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeCeph {
    pub(crate) pool: Arc<Mutex<Pool>>,
}

impl FakeCeph {
    /// Answers `rbd` and `ceph` commands of `runner` from this cluster.
    pub(crate) fn install(&self, runner: &FakeRunner) {
        let pool = self.pool.clone();
        runner.on_with("rbd", move |cmd| {
            let words = without_connection_options(cmd);
            match pool.lock() {
                Ok(mut pool) => pool.rbd(&words),
                Err(_) => fail(5, "poisoned"),
            }
        });
        runner.on_with("ceph", |cmd| {
            let words = without_connection_options(cmd);
            let joined = words.join(" ");
            if joined.starts_with("fsid") {
                Output::ok(include_str!("../fixtures/ceph-fsid.json"))
            } else if joined.starts_with("mon dump") {
                Output::ok(include_str!("../fixtures/ceph-mon-dump.json"))
            } else if joined.starts_with("df") {
                Output::ok(include_str!("../fixtures/ceph-df.json"))
            } else if joined.starts_with("osd pool get-quota") {
                Output::ok(include_str!("../fixtures/ceph-get-quota.json"))
            } else if joined.starts_with("osd pool ls detail") {
                Output::ok(include_str!("../fixtures/ceph-pool-ls-detail.json"))
            } else {
                fail(22, "Error EINVAL: unknown command")
            }
        });
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Pool) -> T) -> T {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut pool)
    }
}
