//! The peers: finding a Python that has them (`--python`, `$AE_PEER_PYTHON`, or the venv of
//! `../shared/anchors/setup.sh` under the temporary folder), their scripts, and running one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BenchArgs;
use super::parse::peer_epoch_seconds;

/// The environment variable naming the peers' Python.
const PYTHON_ENV: &str = "AE_PEER_PYTHON";

/// Where `bash ../shared/anchors/setup.sh` makes its venv by default: `anchors` in the
/// temporary folder (`$TMPDIR`, else `/tmp`); its Python is used when none is given.
fn default_python() -> PathBuf {
    std::env::temp_dir().join("anchors/bin/python")
}

/// A Python that can run the peers, or why there is none.
pub(super) struct Peers {
    pub(super) python: PathBuf,
    /// The directory of the peers' scripts, or why there is none (the
    /// inference peer is ours, in xtask/peers, and runs without it).
    pub(super) anchors: std::result::Result<PathBuf, String>,
    pub(super) mnist_dir: PathBuf,
    /// Module name → version, for the modules the peers need that imported.
    pub(super) versions: BTreeMap<String, String>,
}

/// The root of this repository.
pub(super) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(super) fn find_python(args: &BenchArgs) -> std::result::Result<PathBuf, String> {
    if let Some(p) = &args.python {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let default = default_python();
    if default.is_file() {
        return Ok(default);
    }
    Err(format!(
        "no Python with the peers: give --python or ${PYTHON_ENV}, or run \
         `bash ../shared/anchors/setup.sh` (makes {})",
        default.display()
    ))
}

pub(super) fn peers(args: &BenchArgs, mnist_dir: &Path) -> std::result::Result<Peers, String> {
    if args.no_peers {
        return Err("not run (--no-peers)".into());
    }
    if args.quick {
        return Err("not run with --quick (a slice is not the peers' work)".into());
    }
    let python = find_python(args)?;
    let anchors = args
        .anchors
        .clone()
        .unwrap_or_else(|| repo_root().join("../shared/anchors"));
    let anchors = if anchors.join("torch_seed.py").is_file() {
        Ok(anchors)
    } else {
        Err(format!(
            "no peer scripts in {} (give --anchors)",
            anchors.display()
        ))
    };
    let probe = "import importlib, sys\n\
                 for m in ('torch', 'jax', 'optax'):\n\
                 \x20   try: print(m, importlib.import_module(m).__version__)\n\
                 \x20   except Exception: pass\n";
    let out = Command::new(&python)
        .args(["-c", probe])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            last_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let versions = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(m, v)| (m.to_string(), v.trim().to_string()))
        .collect();
    Ok(Peers {
        python,
        anchors,
        mnist_dir: mnist_dir.to_path_buf(),
        versions,
    })
}

pub(super) fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_string()
}

/// Runs `python script args...` in `cwd` with `envs` set and returns its
/// stdout, or why it did not run or failed (the last line of its stderr).
pub fn run_python(
    python: &Path,
    script: &Path,
    args: &[String],
    envs: &[(&str, String)],
    cwd: &Path,
) -> std::result::Result<String, String> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(args)
        .current_dir(cwd)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            out.status,
            last_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A peer training script and the modules it needs.
pub(super) struct PeerScript {
    pub(super) name: &'static str,
    pub(super) module: &'static str,
    pub(super) needs: &'static [&'static str],
    pub(super) script: &'static str,
    pub(super) args: &'static [&'static str],
}

impl PeerScript {
    pub(super) fn label(&self, peers: Option<&Peers>) -> String {
        match peers.and_then(|p| p.versions.get(self.module)) {
            Some(v) => format!("{} {}", self.name, v.split('+').next().unwrap_or(v)),
            None => self.name.to_string(),
        }
    }

    /// One run of `epochs` epochs: the epoch times after the first.
    pub(super) fn run(
        &self,
        peers: &Peers,
        epochs: usize,
    ) -> std::result::Result<Vec<f64>, String> {
        if let Some(m) = self
            .needs
            .iter()
            .find(|m| !peers.versions.contains_key(**m))
        {
            return Err(format!("{} has no `{m}`", peers.python.display()));
        }
        let anchors = peers.anchors.as_ref().map_err(Clone::clone)?;
        let stdout = run_python(
            &peers.python,
            &anchors.join(self.script),
            &self
                .args
                .iter()
                .map(|a| a.replace("{epochs}", &epochs.to_string()))
                .collect::<Vec<_>>(),
            &[
                ("EPOCHS", epochs.to_string()),
                ("MNIST_DIR", peers.mnist_dir.display().to_string()),
            ],
            anchors,
        )?;
        peer_epoch_seconds(&stdout)
    }
}

pub(super) const TORCH_SEED: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_seed.py",
    args: &[],
};
pub(super) const JAX_SEED: PeerScript = PeerScript {
    name: "JAX",
    module: "jax",
    needs: &["jax", "optax"],
    script: "jax_seed.py",
    args: &[],
};
pub(super) const TORCH_VAE: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_variants.py",
    args: &["vae", "{epochs}"],
};
pub(super) const TORCH_CONV: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_variants.py",
    args: &["conv", "{epochs}"],
};

/// How a peer script is run, for the notes: `EPOCHS=N python torch_seed.py`.
pub(super) fn peer_command(script: &PeerScript) -> String {
    let args: Vec<String> = script
        .args
        .iter()
        .map(|a| a.replace("{epochs}", "N"))
        .collect();
    if args.is_empty() {
        format!("EPOCHS=N python {}", script.script)
    } else {
        format!("python {} {}", script.script, args.join(" "))
    }
}
