//! `cargo xtask train-all --quick`: all five variants train on a slice, the
//! summary lists them, every run has its pictures, and `report.html` renders
//! in headless Chromium with every picture loaded (quick training runs once:
//! all of it is checked in one test).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::xtask_ok;

use ae_train::{evaluate, load_run};
use ae_viz::{ImageGrid, PlotManifest, Rgb8Image, read_png, test_images};
use candle_core::Device;

const KINDS: [&str; 5] = ["vanilla", "sparse", "conv", "denoising", "vae"];

#[test]
fn train_all_quick_writes_every_run_the_summary_the_pictures_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = xtask_ok([
        "train-all",
        "--quick",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let summary = std::fs::read_to_string(tmp.path().join("summary.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), summary.trim());
    for kind in KINDS {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {kind} |")))
            .unwrap_or_else(|| panic!("no row for {kind}:\n{summary}"));
        // epochs, time, BCE, MSE are numbers; BCE is a plausible loss after one short epoch.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], "1", "{row}");
        let bce: f64 = cells[4].parse().unwrap();
        assert!(bce > 0.0 && bce < 0.7, "{row}");
        for f in ["config.json", "model.safetensors", "metrics.json"] {
            assert!(tmp.path().join(kind).join(f).is_file(), "{kind}/{f}");
        }
    }
    assert!(summary.contains("n/a (quick)"));
    check_uses(&summary);

    let pictures = check_pictures(tmp.path());
    check_reconstruction_rows(tmp.path());
    check_report(tmp.path(), pictures);
}

/// The numbers in a Markdown table cell, in order (`-` and `.` inside numbers).
fn numbers(cell: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in cell.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || c == '.' || (c == '-' && cur.is_empty()) {
            cur.push(c);
        } else {
            if let Ok(v) = cur.trim_end_matches('.').parse::<f64>() {
                out.push(v);
            }
            cur.clear();
        }
    }
    out
}

/// The Uses section: every cheap use measured from the quick runs next to its
/// baseline, and the long tables said to be absent in a fresh folder.
fn check_uses(summary: &str) {
    let (_, uses) = summary
        .split_once("## Uses: each against its baseline")
        .unwrap_or_else(|| panic!("no Uses section:\n{summary}"));
    let row = |start: &str| -> Vec<String> {
        let line = uses
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start:?}:\n{uses}"));
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    // [_, use, ours, baseline, _]
    let pca = row("| dimensionality reduction (32-d code)");
    let (ae, base) = (numbers(&pca[2]), numbers(&pca[3]));
    assert!(pca[3].starts_with("PCA-32:"), "{pca:?}");
    for v in ae.iter().chain(&base[1..]) {
        assert!(*v > 0.0 && *v < 1.0, "{pca:?}");
    }
    // The feature-learning row probes the `features` run, and names it; the vanilla
    // codes keep a probe row of their own.
    let probe = row("| feature learning: linear probe on 32-d codes");
    assert!(probe[2].contains("`features` run"), "{probe:?}");
    assert!(probe[3].starts_with("PCA-32 codes:"), "{probe:?}");
    let vanilla = row("| linear probe on the vanilla run's 32-d codes");
    for c in probe[2..4].iter().chain(&vanilla[2..4]) {
        let acc = *numbers(c).last().unwrap();
        assert!((10.0..=100.0).contains(&acc), "{probe:?} {vanilla:?}");
    }
    let comp = row("| compression");
    // "8 bits: B bytes, P dB; 4 bits: ..." against gzip and PNG bytes.
    let ours = numbers(&comp[2]);
    let theirs = numbers(&comp[3]);
    assert_eq!((ours[0], ours[3]), (8.0, 4.0), "{comp:?}");
    assert!(
        ours[4] < ours[1],
        "4 bits take fewer bytes than 8: {comp:?}"
    );
    assert!(ours[1] < theirs[1], "the .aez beats gzip: {comp:?}");
    for noise in [
        "gaussian:0.2",
        "gaussian:0.4",
        "gaussian:0.6",
        "salt-pepper:0.2",
    ] {
        let r = row(&format!("| denoising, {noise}"));
        for c in &r[2..4] {
            let v = numbers(c);
            let (psnr, ssim) = (v[v.len() - 2], v[v.len() - 1]);
            assert!(psnr > 3.0 && psnr < 60.0 && ssim.abs() <= 1.0, "{r:?}");
        }
    }
    let generation = row("| generation: test log-likelihood");
    let (iwae, elbo) = (
        *numbers(&generation[2]).last().unwrap(),
        *numbers(&generation[3]).last().unwrap(),
    );
    assert!(iwae < 0.0 && elbo < 0.0, "{generation:?}");
    assert!(
        iwae >= elbo - 0.5,
        "IWAE (K = 10) below the ELBO: {generation:?}"
    );
    assert!(
        uses.contains("`cargo xtask anomaly-benchmark` writes it"),
        "{uses}"
    );
    assert!(uses.contains("`cargo xtask uses` writes it"), "{uses}");
}

/// Every run (the five variants and the probe's `features` run, a denoising model)
/// has the pictures that apply to its model, of the sizes its manifest gives, none
/// blank; returns how many there are in all.
fn check_pictures(root: &Path) -> usize {
    let common = ["loss.png", "reconstructions.png", "latent.png"];
    let mut total = 0;
    for (dir_name, kind) in KINDS
        .iter()
        .map(|k| (*k, *k))
        .chain([("features", "denoising")])
    {
        let dir = root.join(dir_name);
        let manifest = PlotManifest::read(&dir)
            .unwrap()
            .unwrap_or_else(|| panic!("{dir_name}: no plots.json"));
        assert_eq!(manifest.model, kind);
        let files: Vec<&str> = manifest.pictures.iter().map(|p| p.file.as_str()).collect();
        for f in common {
            assert!(files.contains(&f), "{kind}: {f} missing from {files:?}");
        }
        let extra: &[&str] = match kind {
            "sparse" => &["code-histogram.png"],
            "denoising" => &["denoising.png"],
            "vae" => &["samples.png", "interpolations.png"],
            _ => &[],
        };
        for f in extra {
            assert!(files.contains(f), "{kind}: {f} missing from {files:?}");
        }
        assert_eq!(files.len(), common.len() + extra.len(), "{kind}: {files:?}");
        for p in &manifest.pictures {
            let img = read_png(&dir.join(&p.file)).unwrap();
            assert_eq!(
                (img.width, img.height),
                (p.width, p.height),
                "{kind}/{}",
                p.file
            );
            assert!(img.distinct_colours() > 2, "{kind}/{} is blank", p.file);
        }
        if kind == "sparse" {
            let hist = manifest
                .pictures
                .iter()
                .find(|p| p.file == "code-histogram.png")
                .unwrap();
            assert!(hist.caption.contains("against vanilla"), "{}", hist.caption);
        }
        total += manifest.pictures.len();
    }
    total
}

/// Mean squared difference, in [0,1] units, between the grey images of rows 0 and 1.
fn row_mse(img: &Rgb8Image, grid: &ImageGrid, cols: usize) -> f64 {
    let (w, h) = grid.cell_size();
    let mut sum = 0.0f64;
    for col in 0..cols {
        let (xa, ya) = grid.cell_origin(0, col);
        let (xb, yb) = grid.cell_origin(1, col);
        for y in 0..h {
            for x in 0..w {
                let d = (img.pixel(xa + x, ya + y)[0] as f64 - img.pixel(xb + x, yb + y)[0] as f64)
                    / 255.0;
                sum += d * d;
            }
        }
    }
    sum / (cols * w * h) as f64
}

/// The reconstruction row differs from the originals by the model's test
/// error on those images (as `ae eval` measures it), up to 8-bit quantisation.
fn check_reconstruction_rows(root: &Path) {
    for kind in ["vanilla", "sparse", "conv"] {
        let run = load_run(&root.join(kind), &Device::Cpu).unwrap();
        let test = test_images(&run, Some(10)).unwrap();
        let eval = evaluate(run.model.as_ref(), &test, 10, &Device::Cpu, 0).unwrap();
        let img = read_png(&root.join(kind).join("reconstructions.png")).unwrap();
        let grid = ImageGrid::auto(1, 28, 28);
        assert_eq!((img.width, img.height), grid.picture_size(2, 10));
        let measured = row_mse(&img, &grid, 10);
        let tol = 2.0 * eval.mse.sqrt() / 255.0 + 1.0 / (255.0 * 255.0);
        assert!(
            (measured - eval.mse).abs() <= tol,
            "{kind}: the rows differ by {measured}, the model's MSE on those images is {}",
            eval.mse
        );
    }
}

/// `report.html` holds every run and picture, and a real browser shows it
/// with every picture loaded at its size.
fn check_report(root: &Path, pictures: usize) {
    let report = root.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    for kind in KINDS.iter().chain(&["features"]) {
        assert!(
            html.contains(&format!("id=\"run-{kind}\"")),
            "no section for {kind}"
        );
    }
    assert_eq!(html.matches("<img ").count(), pictures);
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        pictures
    );
    assert!(html.contains(&format!("data-images=\"{pictures}\"")));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not need a network"
    );
    // The summary table, converted, and the uses against their baselines.
    assert!(html.contains("<th>variant</th>") && html.contains("<th>mean |code|</th>"));
    assert!(html.contains("Uses: each against its baseline</h3>"));
    assert!(html.contains("<th>use</th><th>ours</th><th>baseline</th>"));

    let Some(chromium) = find_chromium() else {
        let msg = "chromium is not installed: the report was not checked in a browser \
                   (`apt-get install chromium`; .ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("NOTICE: {msg}");
        return;
    };
    let url = format!("file://{}", report.canonicalize().unwrap().display());

    // The page's own check: every <img> decoded, at the size plots.json gives.
    let dom = run_chromium(&chromium, root, &["--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8_lossy(&dom);
    let check = dom
        .split("id=\"image-check\"")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| {
            panic!(
                "no #image-check in the DOM Chromium dumped:\n{}",
                &dom[..dom.len().min(2000)]
            )
        });
    assert!(
        check.contains("data-status=\"ok\"")
            && check.contains(&format!("All {pictures} pictures loaded.")),
        "the page says: {check}"
    );

    // A screenshot: the right size and not blank (text, tables and pictures drawn).
    let shot = root.join("report-screenshot.png");
    run_chromium(
        &chromium,
        root,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    let img = read_png(&shot).unwrap();
    assert_eq!((img.width, img.height), (1280, 2000));
    let non_white = img
        .data
        .chunks_exact(3)
        .filter(|p| p != &[255, 255, 255])
        .count();
    assert!(
        non_white > img.width * img.height / 30,
        "the screenshot is almost blank ({non_white} non-white pixels)"
    );
    assert!(
        img.distinct_colours() > 100,
        "{} colours",
        img.distinct_colours()
    );
}

/// Debian's `chromium` (or `chromium-browser`) on PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium on this closed network (no sandbox, no GPU, no
/// background networking, a fresh profile) and returns its stdout; fails the
/// test after 120 s.
fn run_chromium(chromium: &Path, work: &Path, args: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let stdout_path = work.join("chromium.stdout");
    let stderr_path = work.join("chromium.stderr");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish in 120 s:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium {args:?} failed ({status}):\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    std::fs::read(&stdout_path).unwrap()
}
