//! Figures, the rates a benchmark measured with their baselines, and how they are printed:
//! plain-text tables, and one JSON object per figure with `--json`.

use std::time::Duration;

use serde::Serialize;
use signet_pki::KeyAlgorithm;

use super::micros;

/// One measured rate, with its baseline when it has one.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Figure {
    pub(super) bench: &'static str,
    pub(super) case: &'static str,
    #[serde(skip)]
    pub(super) label: String,
    pub(super) key: KeyAlgorithm,
    /// Threads, tasks or connections working at once.
    pub(super) concurrency: u64,
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) seconds: f64,
    pub(super) per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_us: Option<u64>,
    /// `<case>@<concurrency>` of the baseline figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) baseline: Option<String>,
    #[serde(skip)]
    pub(super) baseline_label: String,
    /// per_second / the baseline's per_second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ratio: Option<f64>,
    /// The smallest ratio DESIGN §5 accepts without looking for overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) design_bar: Option<f64>,
    /// The largest p99 DESIGN §5 accepts, where it sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) p99_bar_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) first_error: Option<String>,
}

/// What a timed loop produced.
#[derive(Debug, Default)]
pub(super) struct Measured {
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) elapsed: Duration,
    pub(super) latencies_us: Vec<u64>,
    pub(super) first_error: Option<String>,
}

impl Measured {
    /// Adds another slice of the same case.
    pub(super) fn merge(&mut self, other: Measured) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(super) fn into_figure(
        mut self,
        bench: &'static str,
        case: &'static str,
        label: impl Into<String>,
        key: KeyAlgorithm,
        concurrency: u64,
    ) -> Figure {
        self.latencies_us.sort_unstable();
        let seconds = self.elapsed.as_secs_f64();
        Figure {
            bench,
            case,
            label: label.into(),
            key,
            concurrency,
            ops: self.ops,
            errors: self.errors,
            seconds,
            per_second: if seconds > 0.0 { self.ops as f64 / seconds } else { 0.0 },
            p50_us: percentile(&self.latencies_us, 50.0),
            p99_us: percentile(&self.latencies_us, 99.0),
            baseline: None,
            baseline_label: String::new(),
            ratio: None,
            design_bar: None,
            p99_bar_us: None,
            first_error: self.first_error,
        }
    }
}

impl Figure {
    pub(super) fn against(mut self, base: &Figure, design_bar: Option<f64>) -> Self {
        self.baseline = Some(format!("{}@{}", base.case, base.concurrency));
        self.baseline_label = format!("{} ×{}", base.label, base.concurrency);
        self.ratio = (base.per_second > 0.0).then(|| self.per_second / base.per_second);
        self.design_bar = design_bar;
        self
    }

    /// Holds the figure's p99 latency to `bar` as well.
    pub(super) fn p99_at_most(mut self, bar: Duration) -> Self {
        self.p99_bar_us = Some(micros(bar));
        self
    }

    pub(super) fn verdict(&self) -> String {
        let ratio = match (self.ratio, self.design_bar) {
            (Some(r), Some(bar)) if r >= bar => Some(format!("ok (≥ {bar:.2})")),
            (Some(_), Some(bar)) => Some(format!("below {bar:.2}: overhead to find")),
            _ => None,
        };
        let ms = |us: u64| us as f64 / 1000.0;
        let p99 = match (self.p99_us, self.p99_bar_us) {
            (Some(p), Some(bar)) if p <= bar => Some(format!("p99 {:.1} ms ok (≤ {:.0} ms)", ms(p), ms(bar))),
            (Some(p), Some(bar)) => Some(format!("p99 {:.1} ms over {:.0} ms", ms(p), ms(bar))),
            _ => None,
        };
        ratio.into_iter().chain(p99).collect::<Vec<_>>().join("; ")
    }
}

/// Nearest-rank percentile of sorted samples.
pub(super) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub(super) struct Out {
    pub(super) json: bool,
}

impl Out {
    pub(super) fn text(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    pub(super) fn json<T: Serialize>(&self, v: &T) {
        if self.json {
            match serde_json::to_string(v) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("cannot encode a figure as JSON: {e}"),
            }
        }
    }

    pub(super) fn figures(&self, title: &str, figs: &[Figure], notes: &[String]) {
        for f in figs {
            self.json(f);
        }
        self.text(&figure_table(title, figs, notes));
    }
}

fn figure_table(title: &str, figs: &[Figure], notes: &[String]) -> String {
    let header = ["case", "conc", "ops", "errors", "per s", "p50 µs", "p99 µs", "ratio", "baseline", "DESIGN §5"];
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| grouped(v as f64));
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|f| {
            vec![
                f.label.clone(),
                f.concurrency.to_string(),
                grouped(f.ops as f64),
                f.errors.to_string(),
                rate_text(f.per_second),
                opt(f.p50_us),
                opt(f.p99_us),
                f.ratio.map_or_else(String::new, |r| format!("{r:.2}")),
                f.baseline_label.clone(),
                f.verdict(),
            ]
        })
        .collect();
    let mut s = format!("\n{title}\n{}", render(&header, &rows));
    for f in figs.iter().filter(|f| f.errors > 0) {
        s.push_str(&format!(
            "  {}: {} errors, first: {}\n",
            f.label,
            f.errors,
            f.first_error.as_deref().unwrap_or("?")
        ));
    }
    for n in notes {
        s.push_str(&format!("  {n}\n"));
    }
    s
}

/// A plain-text table: the first column left-aligned, the others right-aligned.
pub(super) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i == 0 {
                s.push_str(&format!("  {cell}{pad}"));
            } else {
                s.push_str(&format!("  {pad}{cell}"));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A count with thousands separators.
pub(super) fn grouped(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        return "n/a".into();
    }
    let digits = (v.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn rate_text(v: f64) -> String {
    if v.is_finite() && v < 100.0 { format!("{v:.1}") } else { grouped(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
    }
}
