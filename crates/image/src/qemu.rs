//! `qemu-img` through the [`CommandRunner`]: `info` and `convert`, always
//! with an explicit `-f` (the format the inspector checked; qemu's own
//! probing is how CVE-2024-32498's images got read as something else),
//! under `prlimit` resource limits.
//!
//! Limits: `qemu-img info` gets Cinder's `image_conversion_cpu_limit` and
//! `image_conversion_address_space_limit`, as in Cinder. `qemu-img convert`
//! gets the address-space limit only: its CPU time grows with the image
//! (whose virtual size was already checked against the volume), so a fixed
//! CPU budget would fail large legitimate images, which is also why Cinder
//! does not limit its conversions at all.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clinker_config::ImageOptions;
use clinker_exec::{Command, CommandRunner};
use serde_json::Value;

use crate::error::ImageError;
use crate::inspect::QemuFormat;

/// How long `qemu-img info` may take in wall time (its CPU is limited
/// separately).
const INFO_TIMEOUT: Duration = Duration::from_secs(120);

/// Resource limits for `qemu-img` on untrusted data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QemuImgLimits {
    /// `image_conversion_cpu_limit`: seconds of CPU.
    pub cpu_seconds: u64,
    /// `image_conversion_address_space_limit` in bytes.
    pub address_space_bytes: u64,
}

impl QemuImgLimits {
    /// The limits `cinder.conf` asks for.
    pub fn from_options(options: &ImageOptions) -> Self {
        Self {
            cpu_seconds: options.image_conversion_cpu_limit,
            address_space_bytes: options.address_space_limit_bytes(),
        }
    }
}

impl Default for QemuImgLimits {
    /// Cinder's defaults: 60 s of CPU, 1 GiB of address space.
    fn default() -> Self {
        Self {
            cpu_seconds: 60,
            address_space_bytes: 1 << 30,
        }
    }
}

/// How `qemu-img convert` writes its output (`-t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheMode {
    /// `none` (O_DIRECT): for block devices, so the data is on the device
    /// when qemu-img exits (Cinder, bug #1363016).
    None,
    /// `writeback`: for files, flushed once at the end (qemu's convert
    /// default, `unsafe`, never flushes).
    Writeback,
}

impl CacheMode {
    fn as_str(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::Writeback => "writeback",
        }
    }

    /// `none` for a block device, `writeback` otherwise.
    pub fn for_destination(path: &Path) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device()) {
            CacheMode::None
        } else {
            CacheMode::Writeback
        }
    }
}

/// What `qemu-img info --output=json` reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuImgInfo {
    /// `format`.
    pub format: String,
    /// `virtual-size` in bytes.
    pub virtual_size: u64,
    /// `backing-filename`, if any.
    pub backing_filename: Option<String>,
    /// qcow2's `format-specific.data.data-file`, if any.
    pub data_file: Option<String>,
    /// VMDK's `format-specific.data.create-type`.
    pub create_type: Option<String>,
}

impl QemuImgInfo {
    fn parse(stdout: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(stdout).ok()?;
        let data = v.pointer("/format-specific/data");
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            format: v.get("format")?.as_str()?.to_owned(),
            virtual_size: v.get("virtual-size")?.as_u64()?,
            backing_filename: text(v.get("backing-filename")),
            data_file: text(data.and_then(|d| d.get("data-file"))),
            create_type: text(data.and_then(|d| d.get("create-type"))),
        })
    }
}

/// Runs `qemu-img` for the image path.
#[derive(Clone, Debug)]
pub struct QemuImg {
    runner: Arc<dyn CommandRunner>,
    limits: QemuImgLimits,
}

impl QemuImg {
    /// A `qemu-img` run by `runner` under `limits`.
    pub fn new(runner: Arc<dyn CommandRunner>, limits: QemuImgLimits) -> Self {
        Self { runner, limits }
    }

    /// `prlimit` (util-linux) in front of `cmd`: the limits apply to
    /// qemu-img alone, and to nothing it might start.
    fn limited(&self, cmd: Command, cpu: bool) -> Command {
        let mut args = Vec::with_capacity(cmd.args.len() + 4);
        if cpu {
            args.push(format!("--cpu={}", self.limits.cpu_seconds));
        }
        args.push(format!("--as={}", self.limits.address_space_bytes));
        args.push("--".to_owned());
        args.push(cmd.program.clone());
        args.extend(cmd.args.iter().cloned());
        Command {
            program: "prlimit".to_owned(),
            args,
            ..cmd
        }
        .env("LC_ALL", "C")
    }

    /// `qemu-img info -f <format> --output=json <path>`.
    ///
    /// # Errors
    /// qemu-img failed or printed something unreadable.
    pub async fn info(&self, path: &Path, format: QemuFormat) -> Result<QemuImgInfo, ImageError> {
        let cmd = Command::new("qemu-img")
            .args(["info", "-f", format.as_str(), "--output=json"])
            .arg(path.display().to_string())
            .timeout(INFO_TIMEOUT);
        let out = self
            .runner
            .run_checked(&self.limited(cmd, true))
            .await
            .map_err(|e| ImageError::Conversion(format!("qemu-img info failed: {e}")))?;
        QemuImgInfo::parse(&out.stdout)
            .ok_or_else(|| ImageError::Conversion("'qemu-img info' parsing failed.".into()))
    }

    /// `qemu-img convert -f <from> -O <to> [-t <cache>] [-n] [-c] src dst`:
    /// `-n` writes into an existing destination (a volume keeps its size),
    /// `-c` compresses (qcow2 uploads).
    ///
    /// # Errors
    /// qemu-img failed.
    pub async fn convert(
        &self,
        source: &Path,
        from: QemuFormat,
        destination: &Path,
        to: QemuFormat,
        options: ConvertOptions,
    ) -> Result<(), ImageError> {
        let mut cmd =
            Command::new("qemu-img").args(["convert", "-f", from.as_str(), "-O", to.as_str()]);
        if let Some(cache) = options.cache {
            cmd = cmd.args(["-t", cache.as_str()]);
        }
        if options.target_exists {
            cmd = cmd.arg("-n");
            if options.target_is_zero {
                cmd = cmd.arg("--target-is-zero");
            }
        }
        if options.compress {
            cmd = cmd.arg("-c");
        }
        let cmd = cmd
            .arg(source.display().to_string())
            .arg(destination.display().to_string());
        let started = std::time::Instant::now();
        self.runner
            .run_checked(&self.limited(cmd, false))
            .await
            .map_err(|e| {
                if e.stderr().contains("No space left") {
                    ImageError::Conversion(format!(
                        "Insufficient free space on {} for image conversion.",
                        destination.display()
                    ))
                } else {
                    ImageError::Conversion(format!("qemu-img convert failed: {e}"))
                }
            })?;
        tracing::info!(
            source = %source.display(),
            destination = %destination.display(),
            from = from.as_str(),
            to = to.as_str(),
            seconds = started.elapsed().as_secs_f64(),
            "converted image"
        );
        Ok(())
    }
}

/// Switches of [`QemuImg::convert`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// `-t`.
    pub cache: Option<CacheMode>,
    /// `-n`: the destination exists and keeps its size.
    pub target_exists: bool,
    /// `--target-is-zero` (with `-n`): the destination reads as zeros, so
    /// zero regions are not written (they stay holes).
    pub target_is_zero: bool,
    /// `-c`.
    pub compress: bool,
}

#[cfg(test)]
mod tests {
    use clinker_exec::{FakeRunner, Output};

    use super::*;

    #[tokio::test]
    async fn commands_carry_the_format_and_the_limits() {
        let fake = FakeRunner::new();
        fake.on(
            "prlimit --cpu=60 --as=1073741824 -- qemu-img info",
            Output::ok(
                r#"{"format": "qcow2", "virtual-size": 1073741824, "backing-filename": "/etc/x",
                    "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}}"#,
            ),
        );
        let qemu = QemuImg::new(Arc::new(fake.clone()), QemuImgLimits::default());
        let info = qemu
            .info(Path::new("/c/img"), QemuFormat::Qcow2)
            .await
            .unwrap();
        assert_eq!(info.virtual_size, 1 << 30);
        assert_eq!(info.backing_filename.as_deref(), Some("/etc/x"));
        assert_eq!(info.data_file.as_deref(), Some("/dev/sda"));
        qemu.convert(
            Path::new("/c/img"),
            QemuFormat::Vpc,
            Path::new("/v/volume-1"),
            QemuFormat::Raw,
            ConvertOptions {
                cache: Some(CacheMode::Writeback),
                target_exists: true,
                target_is_zero: false,
                compress: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            fake.calls(),
            [
                "prlimit --cpu=60 --as=1073741824 -- qemu-img info -f qcow2 --output=json /c/img",
                "prlimit --as=1073741824 -- qemu-img convert -f vpc -O raw -t writeback -n /c/img /v/volume-1",
            ]
        );
        assert!(
            fake.commands()
                .iter()
                .all(|c| c.env.contains(&("LC_ALL".into(), "C".into())))
        );
    }

    #[tokio::test]
    async fn unreadable_info_is_an_error() {
        let fake = FakeRunner::new();
        fake.on("prlimit", Output::ok("not json"));
        let qemu = QemuImg::new(Arc::new(fake), QemuImgLimits::default());
        let err = qemu
            .info(Path::new("/x"), QemuFormat::Raw)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to copy image to volume: 'qemu-img info' parsing failed."
        );
    }
}
