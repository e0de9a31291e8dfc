//! Unit tests of the LVM driver. `commands` checks argv builders, report
//! parsers and error classification against captured output; `driver` runs
//! the driver against [`Model`], a small in-memory LVM behind the fake
//! runner, asserting the exact command lines of every operation.

#![allow(clippy::unwrap_used)]

mod commands;
mod driver;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use clinker_config::{
    BackendConfig, DriverConfig, LvmDriverOptions, LvmType, TargetConfig, TargetHelperKind,
    VolumeClear,
};
use clinker_exec::{FakeRunner, Output};
use clinker_types::VolumeId;
use serde_json::json;

use super::*;
use crate::targets::fake::FakeTarget;
use crate::testing::fixture;

const VG: &str = "cinder-volumes";
const MIB: u64 = 1 << 20;

// ---- a model of LVM behind the fake runner --------------------------------

#[derive(Clone, Debug, Default)]
pub(super) struct Lv {
    name: String,
    size: u64,
    origin: Option<String>,
    pool: Option<String>,
    is_pool: bool,
    thick_snapshot: bool,
    data_percent: f64,
    inactive: bool,
    open: bool,
}

#[derive(Debug)]
pub(super) struct Model {
    vg_size: u64,
    vg_missing: bool,
    lvs: Vec<Lv>,
    pvs: Vec<(String, u64, u64)>,
}

impl Model {
    fn used(&self) -> u64 {
        self.lvs
            .iter()
            .filter(|lv| lv.pool.is_none())
            .map(|lv| lv.size)
            .sum()
    }

    fn attr(&self, lv: &Lv) -> String {
        let kind = if lv.is_pool {
            't'
        } else if lv.pool.is_some() {
            'V'
        } else if lv.thick_snapshot {
            's'
        } else if self
            .lvs
            .iter()
            .any(|s| s.thick_snapshot && s.origin.as_deref() == Some(&lv.name))
        {
            'o'
        } else {
            '-'
        };
        let active = if lv.inactive { '-' } else { 'a' };
        let open = if lv.open { 'o' } else { '-' };
        let tail = if lv.is_pool || lv.pool.is_some() {
            "tz--"
        } else if kind == 's' || kind == 'o' {
            "s---"
        } else {
            "----"
        };
        format!("{kind}wi-{active}{open}{tail}")
    }

    fn lvs_json(&self) -> String {
        let rows: Vec<_> = self
            .lvs
            .iter()
            .map(|lv| {
                json!({
                    "vg_name": VG,
                    "lv_name": lv.name,
                    "lv_size": lv.size.to_string(),
                    "lv_attr": self.attr(lv),
                    "origin": lv.origin.clone().unwrap_or_default(),
                    "pool_lv": lv.pool.clone().unwrap_or_default(),
                    "data_percent": if lv.is_pool || lv.pool.is_some() { format!("{:.2}", lv.data_percent) } else { String::new() },
                })
            })
            .collect();
        json!({"report": [{"lv": rows}]}).to_string()
    }

    fn vgs_json(&self) -> String {
        json!({"report": [{"vg": [{
            "vg_name": VG,
            "vg_size": self.vg_size.to_string(),
            "vg_free": (self.vg_size - self.used()).to_string(),
            "lv_count": self.lvs.len().to_string(),
            "vg_uuid": "fZ5ITr-y3ws-tXlg-es24-2pll-q3oM-2IA610",
            "vg_extent_size": (4 * MIB).to_string(),
        }]}]})
        .to_string()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lvs.iter().position(|lv| lv.name == name)
    }

    fn fail(message: String) -> Output {
        Output::failed(5, format!("  WARNING: Activation disabled.\n  {message}\n"))
    }

    fn run(&mut self, args: &[String]) -> Output {
        let start = args.iter().position(|a| !a.contains('=')).unwrap();
        let program = args[start].as_str();
        let rest = &args[start + 1..];
        let flag = |f: &str| {
            rest.iter()
                .position(|a| a == f)
                .map(|i| rest[i + 1].clone())
        };
        let size = |s: &str| -> u64 {
            let (n, unit) = s.split_at(s.len() - 1);
            let n: u64 = n.parse().unwrap();
            if unit == "g" { n << 30 } else { n }
        };
        let lv_arg = || rest.last().unwrap().rsplit('/').next().unwrap().to_owned();
        match program {
            "lvm" => fixture("lvm/nodm/lvm-version"),
            "vgs" if self.vg_missing => fixture("lvm/nodm/vgs-missing-vg"),
            "vgs" => Output::ok(self.vgs_json()),
            "lvs" if self.vg_missing => Self::fail(format!("Volume group \"{VG}\" not found")),
            "lvs" => Output::ok(self.lvs_json()),
            "pvs" => {
                let rows: Vec<_> = self
                    .pvs
                    .iter()
                    .map(|(n, s, f)| json!({"vg_name": VG, "pv_name": n, "pv_size": s.to_string(), "pv_free": f.to_string()}))
                    .collect();
                Output::ok(json!({"report": [{"pv": rows}]}).to_string())
            }
            "lvcreate" => {
                let name = flag("-n").or_else(|| flag("--name")).unwrap_or_else(lv_arg);
                if self.find(&name).is_some() {
                    return Self::fail(format!(
                        "Logical Volume \"{name}\" already exists in volume group \"{VG}\""
                    ));
                }
                let mut lv = Lv {
                    name: name.clone(),
                    ..Lv::default()
                };
                if let Some(origin) = flag("--snapshot") {
                    let origin = origin.rsplit('/').next().unwrap().to_owned();
                    let Some(o) = self.find(&origin) else {
                        return Self::fail(format!(
                            "Failed to find logical volume \"{VG}/{origin}\""
                        ));
                    };
                    let o = self.lvs[o].clone();
                    lv.origin = Some(origin);
                    if o.pool.is_some() {
                        lv.pool = o.pool;
                        lv.size = o.size;
                    } else {
                        lv.thick_snapshot = true;
                        lv.size = size(&flag("-L").unwrap());
                    }
                } else if rest.iter().any(|a| a == "-T") && flag("-V").is_some() {
                    lv.pool = Some(lv_arg());
                    lv.size = size(&flag("-V").unwrap());
                } else if rest.iter().any(|a| a == "-T") {
                    lv.is_pool = true;
                    lv.size = size(&flag("-L").unwrap());
                } else {
                    lv.size = size(&flag("-L").unwrap());
                }
                if lv.pool.is_none() && self.used() + lv.size > self.vg_size {
                    return Self::fail(format!(
                        "Volume group \"{VG}\" has insufficient free space (1 extents): 2 required."
                    ));
                }
                self.lvs.push(lv);
                Output::ok(format!("  Logical volume \"{name}\" created.\n"))
            }
            "lvextend" => {
                let name = lv_arg();
                let Some(i) = self.find(&name) else {
                    return Self::fail(format!(
                        "Logical volume {name} not found in volume group {VG}."
                    ));
                };
                let new = size(&flag("-L").unwrap());
                let origin_active = !self.lvs[i].inactive
                    && self
                        .lvs
                        .iter()
                        .any(|s| s.thick_snapshot && s.origin.as_deref() == Some(&name));
                if origin_active {
                    return Self::fail("Snapshot origin volumes can be resized only while inactive: try lvchange -an.".into());
                }
                if new == self.lvs[i].size {
                    return Self::fail(
                        "New size (256 extents) matches existing size (256 extents).".into(),
                    );
                }
                if self.lvs[i].pool.is_none() && self.used() + new - self.lvs[i].size > self.vg_size
                {
                    return Self::fail(
                        "Insufficient free space: 1536 extents needed, but only 229 available"
                            .into(),
                    );
                }
                self.lvs[i].size = new;
                Output::ok("")
            }
            "lvrename" => {
                let (old, new) = (&rest[1], &rest[2]);
                if self.find(new).is_some() {
                    return Self::fail(format!(
                        "Logical Volume \"{new}\" already exists in volume group \"{VG}\""
                    ));
                }
                let Some(i) = self.find(old) else {
                    return Self::fail(format!(
                        "Existing logical volume \"{old}\" not found in volume group \"{VG}\""
                    ));
                };
                self.lvs[i].name.clone_from(new);
                for lv in &mut self.lvs {
                    if lv.origin.as_deref() == Some(old.as_str()) {
                        lv.origin = Some(new.clone());
                    }
                }
                Output::ok("")
            }
            "lvremove" => {
                let name = lv_arg();
                if self.find(&name).is_none() {
                    return Self::fail(format!("Failed to find logical volume \"{VG}/{name}\""));
                }
                // Like LVM, -f on an origin takes its thick snapshots along.
                self.lvs.retain(|lv| {
                    lv.name != name && !(lv.thick_snapshot && lv.origin.as_deref() == Some(&name))
                });
                Output::ok("")
            }
            "lvchange" => {
                let name = lv_arg();
                if let Some(i) = self.find(&name) {
                    self.lvs[i].inactive = flag("-a").as_deref() == Some("n");
                }
                Output::ok("")
            }
            other => panic!("the model does not know {other}"),
        }
    }
}

pub(super) struct Lvm {
    fake: FakeRunner,
    model: Arc<Mutex<Model>>,
}

impl Lvm {
    /// A VG of `gb` GiB holding `lvs`.
    fn new(gb: u64, lvs: Vec<Lv>) -> Self {
        let model = Arc::new(Mutex::new(Model {
            vg_size: gb << 30,
            vg_missing: false,
            lvs,
            pvs: vec![],
        }));
        let fake = FakeRunner::new();
        let m = model.clone();
        fake.on_with("env LC_ALL=C", move |cmd| m.lock().unwrap().run(&cmd.args));
        Self { fake, model }
    }

    fn names(&self) -> BTreeSet<String> {
        self.model
            .lock()
            .unwrap()
            .lvs
            .iter()
            .map(|lv| lv.name.clone())
            .collect()
    }

    /// The calls that change something (no reports).
    fn changes(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| {
                ![" lvs ", " vgs ", " pvs ", " lvm version"]
                    .iter()
                    .any(|r| c.contains(r))
            })
            .collect()
    }
}

fn lv(name: &str, gb: u64) -> Lv {
    Lv {
        name: name.into(),
        size: gb << 30,
        ..Lv::default()
    }
}

/// The thin pool `lvm_type = thin` makes in [`VG`].
const POOL: &str = "cinder-volumes-pool";

/// [`POOL`], of `gb` GiB.
fn thin_pool(gb: u64) -> Lv {
    Lv {
        is_pool: true,
        ..lv(POOL, gb)
    }
}

/// A thin LV in [`POOL`].
fn thin(name: &str, gb: u64) -> Lv {
    Lv {
        pool: Some(POOL.into()),
        ..lv(name, gb)
    }
}

fn options(lvm_type: LvmType, clear: VolumeClear) -> LvmDriverOptions {
    clinker_testkit::config::lvm_options(VG, lvm_type, clear)
}

fn backend(options: &LvmDriverOptions) -> BackendConfig {
    // The fake target never touches its volumes_dir.
    let target = TargetConfig::with_defaults(
        TargetHelperKind::Fake,
        std::env::temp_dir().join("clinker-unused-targets"),
    );
    BackendConfig {
        volume_backend_name: "lvm-1".into(),
        reserved_percentage: 5,
        ..clinker_testkit::config::backend("lvm", DriverConfig::Lvm(options.clone()), target)
    }
}

async fn driver(lvm: &Lvm, options: LvmDriverOptions) -> LvmDriver {
    let target = Arc::new(FakeTarget::new(&backend(&options).target));
    let d = LvmDriver::new(
        &backend(&options),
        options,
        Arc::new(lvm.fake.clone()),
        target,
    )
    .with_hostname("node1");
    d.check_for_setup_error().await.unwrap();
    lvm.fake.clear_calls();
    d
}

fn volume(gb: i64) -> VolumeSpec {
    VolumeSpec::new(VolumeId::new_random(), gb)
}
