//! PyTorch beside us: the same networks and training step timed by scripts/torch_bench.py in
//! the same `make bench` run, interleaved with ours, for ratios that the machine's noise
//! affects on both sides alike. Uses the Python named by `MIXSWEEP_PYTHON` (default `python3`)
//! when it can import torch; otherwise the report says how to get one.

use std::path::PathBuf;
use std::process::Command;

/// The Python that runs the PyTorch side, and the torch version it imports.
pub struct Torch {
    python: String,
    script: PathBuf,
    pub version: String,
}

/// The script, from the working directory (a checkout) or from where this binary was built.
fn script() -> PathBuf {
    let local = PathBuf::from("scripts/torch_bench.py");
    if local.is_file() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/torch_bench.py")
}

impl Torch {
    /// `Ok` when `MIXSWEEP_PYTHON` (or `python3`) imports torch and the script exists;
    /// otherwise why not.
    pub fn find() -> Result<Torch, String> {
        let python = std::env::var("MIXSWEEP_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = script();
        if !script.is_file() {
            return Err(format!("{} is missing", script.display()));
        }
        let out = Command::new(&python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output()
            .map_err(|e| format!("cannot run `{python}`: {e}"))?;
        if !out.status.success() {
            return Err(format!("`{python}` cannot import torch"));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Torch {
            python,
            script,
            version,
        })
    }

    /// PyTorch's training examples per second for `network` (a name the script knows) on
    /// `threads` threads.
    pub fn examples_per_sec(
        &self,
        network: &str,
        threads: usize,
        quick: bool,
    ) -> Result<f64, String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .args(["--network", network, "--threads", &threads.to_string()])
            .env("OMP_NUM_THREADS", threads.to_string());
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run the PyTorch bench: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the PyTorch bench failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .last()
            .ok_or("the PyTorch bench printed nothing")?;
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("the PyTorch bench printed `{line}`: {e}"))?;
        value["examples_per_sec"]
            .as_f64()
            .ok_or_else(|| format!("the PyTorch bench printed `{line}`"))
    }
}
