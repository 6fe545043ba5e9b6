//! `runs/report.html`: one self-contained page of every run under a folder:
//! the summary table of `summary.md` (each variant against its peer), then
//! for each run its pictures (listed by its `plots.json`, embedded as base64
//! `data:` URIs, so the page needs neither the PNG files nor a network), its
//! metrics per epoch and its `config.json`.
//!
//! A small inline script checks, once the page has loaded, that every picture
//! decoded at the size `plots.json` gives, and says so at the top of the page
//! (`#image-check`, `data-status="ok"` or `"failed"`): the browser test reads it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ae_train::Metrics;
use ae_train::checkpoint::{CONFIG_FILE, METRICS_FILE, read_json, write_atomic};
use ae_viz::PlotManifest;
use anyhow::{Context, Result};

/// The report's file name, in the runs folder.
pub const REPORT_FILE: &str = "report.html";

/// The summary's file name, in the runs folder.
pub const SUMMARY_FILE: &str = "summary.md";

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` and turns `` `code` `` spans into `<code>`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// The cells of a Markdown table row (`\|` is a literal bar inside a cell).
fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    let mut cells = vec![String::new()];
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(last) = cells.last_mut() {
                    last.push('|');
                }
            }
            '|' => cells.push(String::new()),
            c => {
                if let Some(last) = cells.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

/// The little Markdown `summary.md` uses (headings, paragraphs, one table,
/// inline code) as HTML; headings start at `<h2>`.
pub fn markdown_to_html(md: &str) -> String {
    let mut html = String::new();
    let mut para: Vec<&str> = Vec::new();
    let mut table: Vec<&str> = Vec::new();
    let flush_para = |para: &mut Vec<&str>, html: &mut String| {
        if !para.is_empty() {
            let _ = writeln!(html, "<p>{}</p>", inline(&para.join(" ")));
            para.clear();
        }
    };
    let flush_table = |table: &mut Vec<&str>, html: &mut String| {
        if table.is_empty() {
            return;
        }
        html.push_str("<div class=\"table\"><table>\n");
        for (i, row) in table.iter().enumerate() {
            let is_rule = cells(row)
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
            if i == 1 && is_rule {
                continue;
            }
            let tag = if i == 0 { "th" } else { "td" };
            html.push_str("<tr>");
            for c in cells(row) {
                let _ = write!(html, "<{tag}>{}</{tag}>", inline(&c));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table></div>\n");
        table.clear();
    };
    for line in md.lines() {
        let t = line.trim();
        if t.starts_with('|') {
            flush_para(&mut para, &mut html);
            table.push(t);
            continue;
        }
        flush_table(&mut table, &mut html);
        if t.is_empty() {
            flush_para(&mut para, &mut html);
        } else if let Some(h) = t.strip_prefix('#') {
            flush_para(&mut para, &mut html);
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let text = h.trim_start_matches('#').trim();
            let level = (level + 1).min(6);
            let _ = writeln!(html, "<h{level}>{}</h{level}>", inline(text));
        } else {
            para.push(t);
        }
    }
    flush_table(&mut table, &mut html);
    flush_para(&mut para, &mut html);
    html
}

/// The run folders under `root` (sub-folders with a `config.json`): first in
/// the order the summary table lists them, then the others by name.
fn run_dirs(root: &Path, summary: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let path = entry.path();
        if path.join(CONFIG_FILE).is_file() {
            runs.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    let order: Vec<String> = summary
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|l| cells(l).into_iter().next())
        .collect();
    let rank = |name: &str| order.iter().position(|o| o == name).unwrap_or(usize::MAX);
    runs.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    Ok(runs)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.5}")).unwrap_or_else(|| "–".into())
}

fn metrics_table(m: &Metrics) -> String {
    let mut s = String::from(
        "<div class=\"table\"><table>\n<tr><th>epoch</th><th>lr</th><th>train loss</th><th>val loss</th>\
         <th>val recon</th><th>val KL</th><th>val sparsity</th><th>seconds</th><th>images/s</th></tr>\n",
    );
    for e in &m.epochs {
        let best = if m.best_epoch == Some(e.epoch) {
            " class=\"best\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<tr{best}><td>{}</td><td>{:.2e}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.0}</td></tr>",
            e.epoch,
            e.lr,
            e.train_loss,
            e.val_loss,
            e.val_recon,
            fmt_opt(e.val_kl),
            fmt_opt(e.val_sparsity),
            e.seconds,
            e.images_per_sec
        );
    }
    s.push_str("</table></div>\n");
    s
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1400px; padding: 1rem 2rem 3rem; color: #1b1f23; background: #fff; }
h1 { margin-bottom: 0.2rem; }
nav a { margin-right: 1rem; }
.check { padding: 0.4rem 0.8rem; border-radius: 4px; display: inline-block; background: #eee; }
.check[data-status="ok"] { background: #dcffe4; }
.check[data-status="failed"] { background: #ffdce0; }
.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.best td { background: #f0fff4; }
section.run { border-top: 2px solid #d0d7de; margin-top: 2rem; }
.pictures { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; display: block; }
figure img.grid { image-rendering: pixelated; }
figcaption { font-size: 0.85rem; max-width: 640px; margin-top: 0.3rem; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
.missing { color: #b31d28; }
"#;

const CHECK_SCRIPT: &str = r#"
(function () {
  function check() {
    var imgs = Array.prototype.slice.call(document.images);
    var expected = Number(document.body.getAttribute('data-images'));
    var missing = Number(document.body.getAttribute('data-missing'));
    var bad = imgs.filter(function (i) {
      return !(i.complete && i.naturalWidth > 0 &&
               i.naturalWidth === Number(i.getAttribute('data-width')) &&
               i.naturalHeight === Number(i.getAttribute('data-height')));
    });
    var ok = bad.length === 0 && imgs.length === expected && missing === 0;
    var el = document.getElementById('image-check');
    el.setAttribute('data-status', ok ? 'ok' : 'failed');
    el.setAttribute('data-loaded', String(imgs.length - bad.length));
    el.textContent = ok
      ? 'All ' + imgs.length + ' pictures loaded.'
      : 'Pictures that did not load or have the wrong size: ' +
        (bad.map(function (i) { return i.alt; }).join(', ') || 'none') +
        ' (' + imgs.length + ' of ' + expected + ' present, ' + missing + ' missing files).';
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
"#;

/// The page for the runs under `root` (with `root/summary.md`, when there).
pub fn render(root: &Path) -> Result<String> {
    let summary_path = root.join(SUMMARY_FILE);
    let summary = match std::fs::read_to_string(&summary_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", summary_path.display())),
    };
    let runs = run_dirs(root, &summary)?;
    let mut body = String::new();
    let (mut images, mut missing) = (0usize, 0usize);
    body.push_str("<nav>");
    body.push_str("<a href=\"#summary\">summary</a>");
    for (name, _) in &runs {
        let _ = write!(body, "<a href=\"#run-{0}\">{0}</a>", escape(name));
    }
    body.push_str("</nav>\n<section id=\"summary\">\n");
    if summary.is_empty() {
        body.push_str("<p>No summary.md in this folder.</p>\n");
    } else {
        body.push_str(&markdown_to_html(&summary));
    }
    body.push_str("</section>\n");
    for (name, dir) in &runs {
        let _ = writeln!(
            body,
            "<section class=\"run\" id=\"run-{0}\">\n<h2>{0}</h2>",
            escape(name)
        );
        match PlotManifest::read(dir)? {
            None => body.push_str(
                "<p class=\"missing\">No pictures: run <code>ae plot</code> on this run.</p>\n",
            ),
            Some(manifest) => {
                body.push_str("<div class=\"pictures\">\n");
                for p in &manifest.pictures {
                    let path = dir.join(&p.file);
                    let bytes = match std::fs::read(&path) {
                        Ok(b) if b.starts_with(b"\x89PNG\r\n\x1a\n") => b,
                        _ => {
                            missing += 1;
                            let _ = writeln!(
                                body,
                                "<figure><p class=\"missing\">{}: missing or not a PNG</p></figure>",
                                escape(&p.file)
                            );
                            continue;
                        }
                    };
                    images += 1;
                    let class = if p.file.ends_with("loss.png")
                        || p.file.ends_with("latent.png")
                        || p.file.ends_with("histogram.png")
                    {
                        "chart"
                    } else {
                        "grid"
                    };
                    let _ = writeln!(
                        body,
                        "<figure><img class=\"{class}\" src=\"data:image/png;base64,{}\" alt=\"{}: {}\" \
                         width=\"{w}\" height=\"{h}\" data-width=\"{w}\" data-height=\"{h}\" data-file=\"{}\">\
                         <figcaption><b>{}</b> <code>{}</code> {w}x{h}. {}</figcaption></figure>",
                        base64(&bytes),
                        escape(name),
                        escape(&p.title),
                        escape(&p.file),
                        escape(&p.title),
                        escape(&p.file),
                        escape(&p.caption),
                        w = p.width,
                        h = p.height,
                    );
                }
                body.push_str("</div>\n");
            }
        }
        let metrics_path = dir.join(METRICS_FILE);
        if metrics_path.is_file() {
            let m: Metrics = read_json(&metrics_path)?;
            let _ = writeln!(
                body,
                "<h3>Metrics per epoch</h3>\n<p>{} epoch(s), {:.1} s of training{}.</p>",
                m.epochs.len(),
                m.total_seconds(),
                if m.stopped_early {
                    ", stopped early"
                } else {
                    ""
                }
            );
            body.push_str(&metrics_table(&m));
        }
        let config_path = dir.join(CONFIG_FILE);
        let config = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let _ = writeln!(
            body,
            "<details><summary><code>config.json</code></summary><pre>{}</pre></details>\n</section>",
            escape(config.trim_end())
        );
    }
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ae run report</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-images=\"{images}\" data-missing=\"{missing}\">\n\
         <h1>ae run report</h1>\n\
         <p>Every run under <code>{}</code>: the summary against the peer figures, then each run's pictures, \
         metrics and config. This page is self-contained (pictures embedded) and needs no network.</p>\n\
         <p class=\"check\" id=\"image-check\" data-status=\"pending\">Checking the {images} pictures…</p>\n\
         {body}<script>{CHECK_SCRIPT}</script>\n</body>\n</html>\n",
        escape(&root.display().to_string()),
    );
    Ok(html)
}

/// Writes `root/report.html` (atomically) and returns its path.
pub fn write(root: &Path) -> Result<PathBuf> {
    let html = render(root)?;
    let path = root.join(REPORT_FILE);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn markdown_tables_paragraphs_and_escapes() {
        let md = "# Title `x`\n\nSome <b> text\nwrapped.\n\n| a | mean \\|code\\| |\n|---|---|\n| 1 | 2 & 3 |\n\nEnd.";
        let html = markdown_to_html(md);
        assert!(html.contains("<h2>Title <code>x</code></h2>"), "{html}");
        assert!(
            html.contains("<p>Some &lt;b&gt; text wrapped.</p>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th>a</th><th>mean |code|</th></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><td>1</td><td>2 &amp; 3</td></tr>"),
            "{html}"
        );
        assert!(!html.contains("---"));
        assert!(html.contains("<p>End.</p>"));
        assert_eq!(cells("| a | b |"), ["a", "b"]);
    }

    #[test]
    fn an_empty_folder_gives_a_page_without_pictures() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path()).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("data-images=\"0\""));
        assert!(html.contains("No summary.md"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
