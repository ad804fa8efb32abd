//! Percentiles per repeat, then the median over repeats with its min..max,
//! and the ratios the tables show.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::target::Kind;

/// What one sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// `POST /api/jobs` → 202.
    CreateJob,
    /// Upgrade on a job just created → 101.
    ColdOpen,
    /// … → first frame.
    ColdFirstFrame,
    /// Upgrade on a job whose object is in memory → 101.
    WarmOpen,
    /// … → first frame.
    WarmFirstFrame,
    /// First upgrade of a job after a restart (state on disk) → 101.
    RestartOpen,
    /// … → first frame.
    RestartFirstFrame,
    /// Literal `{"type":"ping"}` → `{"type":"pong"}`.
    Ping,
    /// One event, delivery to the last of 1 subscriber.
    Fanout1,
    /// … of 16.
    Fanout16,
    /// … of 32.
    Fanout32,
    /// `POST …/events` → 202, one subscriber.
    Ack,
    /// Events per second, one producer in a closed loop (one value per repeat).
    EventsPerSecond,
    /// A restart: stop, start, until `/healthz` answers (wrangler, workerd,
    /// loading the Worker's module; one value per repeat).
    Restart,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Self; 14] = [
        Self::WarmOpen,
        Self::WarmFirstFrame,
        Self::ColdOpen,
        Self::ColdFirstFrame,
        Self::RestartOpen,
        Self::RestartFirstFrame,
        Self::Ping,
        Self::Fanout1,
        Self::Fanout16,
        Self::Fanout32,
        Self::Ack,
        Self::EventsPerSecond,
        Self::CreateJob,
        Self::Restart,
    ];

    /// Row label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::CreateJob => "create job → 202",
            Self::ColdOpen => "cold upgrade (job just created) → open",
            Self::ColdFirstFrame => "cold upgrade (job just created) → first frame",
            Self::WarmOpen => "warm upgrade → open",
            Self::WarmFirstFrame => "warm upgrade → first frame",
            Self::RestartOpen => "cold upgrade after a restart (state on disk) → open",
            Self::RestartFirstFrame => "cold upgrade after a restart → first frame",
            Self::Ping => "literal ping → pong",
            Self::Fanout1 => "one event → 1 subscriber, delivery",
            Self::Fanout16 => "one event → 16 subscribers, last delivery",
            Self::Fanout32 => "one event → 32 subscribers, last delivery",
            Self::Ack => "producer POST …/events → 202 (1 subscriber)",
            Self::EventsPerSecond => "events per second, one producer, closed loop",
            Self::Restart => "restart → /healthz answers (wrangler + workerd + module load), ms",
        }
    }

    /// The percentiles a table shows for it (none: a plain value).
    #[must_use]
    pub fn percentiles(self) -> &'static [f64] {
        match self {
            Self::EventsPerSecond | Self::Restart => &[],
            Self::WarmOpen | Self::ColdOpen | Self::RestartOpen => &[50.0, 90.0, 99.0],
            Self::Fanout1 | Self::Fanout16 | Self::Fanout32 => &[50.0, 99.0],
            _ => &[50.0],
        }
    }
}

/// The nearest-rank percentile of a sample (NaN when empty).
#[must_use]
pub fn percentile(sample: &[f64], p: f64) -> f64 {
    if sample.is_empty() {
        return f64::NAN;
    }
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Median, min and max of per-repeat values.
#[must_use]
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (percentile(values, 50.0), min, max)
}

/// Every sample, per metric, per target, per repeat (milliseconds, or
/// events per second).
#[derive(Debug, Default)]
pub struct Results {
    /// `(metric, target) → [repeat → sample]`
    pub samples: BTreeMap<(Metric, Kind), Vec<Vec<f64>>>,
}

impl Results {
    /// Adds one repeat's sample.
    pub fn add(&mut self, metric: Metric, kind: Kind, sample: Vec<f64>) {
        self.samples.entry((metric, kind)).or_default().push(sample);
    }

    /// The per-repeat values of one statistic (`p` None: the value itself).
    #[must_use]
    pub fn per_repeat(&self, metric: Metric, kind: Kind, p: Option<f64>) -> Vec<f64> {
        self.samples
            .get(&(metric, kind))
            .map(|repeats| {
                repeats
                    .iter()
                    .map(|s| {
                        p.map_or_else(
                            || s.first().copied().unwrap_or(f64::NAN),
                            |p| percentile(s, p),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The median over repeats of one statistic.
    #[must_use]
    pub fn median(&self, metric: Metric, kind: Kind, p: Option<f64>) -> Option<f64> {
        let values = self.per_repeat(metric, kind, p);
        (!values.is_empty()).then(|| spread(&values).0)
    }

    /// All samples of a metric and target, pooled over repeats (for plots).
    #[must_use]
    pub fn pooled(&self, metric: Metric, kind: Kind) -> Vec<f64> {
        self.samples
            .get(&(metric, kind))
            .map(|r| r.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// The main table in Markdown: one row per metric and percentile, one
    /// column per target (median over repeats, min..max), then the ratios of
    /// every target to the floor (b) and to the seed design (d).
    #[must_use]
    pub fn table(&self, kinds: &[Kind]) -> String {
        let mut out = String::from("| measurement | ");
        for kind in kinds {
            let _ = write!(out, "{} | ", kind.name());
        }
        for kind in kinds.iter().filter(|k| **k != Kind::Floor) {
            let _ = write!(out, "{} ÷ floor | ", kind.name());
        }
        if kinds.contains(&Kind::Seed) {
            let _ = write!(out, "gateway ÷ seed | ");
        }
        out.push('\n');
        let columns = kinds.len() * 2 + usize::from(kinds.contains(&Kind::Seed));
        out.push_str(&"|---".repeat(columns));
        out.push_str("|\n");
        for metric in Metric::ALL {
            let stats: Vec<Option<f64>> = if metric.percentiles().is_empty() {
                vec![None]
            } else {
                metric.percentiles().iter().map(|p| Some(*p)).collect()
            };
            for p in stats {
                let unit = if metric == Metric::EventsPerSecond {
                    ""
                } else {
                    " (ms)"
                };
                let label = match p {
                    Some(p) => format!("{}, p{p}{unit}", metric.label()),
                    None => metric.label().to_owned(),
                };
                let _ = write!(out, "| {label} | ");
                for kind in kinds {
                    let values = self.per_repeat(metric, *kind, p);
                    if values.is_empty() {
                        out.push_str("— | ");
                    } else {
                        let (med, min, max) = spread(&values);
                        let _ = write!(out, "{} ({}..{}) | ", num(med), num(min), num(max));
                    }
                }
                let floor = self.median(metric, Kind::Floor, p);
                for kind in kinds.iter().filter(|k| **k != Kind::Floor) {
                    let _ = write!(out, "{} | ", ratio(self.median(metric, *kind, p), floor));
                }
                if kinds.contains(&Kind::Seed) {
                    let seed = self.median(metric, Kind::Seed, p);
                    let _ = write!(
                        out,
                        "{} | ",
                        ratio(self.median(metric, Kind::Gateway, p), seed)
                    );
                }
                out.push('\n');
            }
        }
        out
    }
}

/// A number with three significant digits.
#[must_use]
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "—".to_owned()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

/// The breakdown's columns: what a warm upgrade and an event cost.
pub const BREAKDOWN: [(Metric, Option<f64>); 7] = [
    (Metric::WarmOpen, Some(50.0)),
    (Metric::WarmFirstFrame, Some(50.0)),
    (Metric::ColdOpen, Some(50.0)),
    (Metric::Fanout1, Some(50.0)),
    (Metric::Ack, Some(50.0)),
    (Metric::EventsPerSecond, None),
    (Metric::CreateJob, Some(50.0)),
];

impl Results {
    /// The breakdown in Markdown: one row per build, one column per
    /// statistic of [`BREAKDOWN`] (median over repeats, min..max, and the
    /// ratio to the floor); then what each left-out piece costs, paired per
    /// repeat: the `nothing` build's value minus the cut build's in the same
    /// repeat (events per second: the cut build's minus the `nothing`
    /// build's), so a positive number is what the piece costs; the median of
    /// those differences over the repeats, with min..max.
    #[must_use]
    pub fn breakdown(&self, kinds: &[Kind], nothing: Kind) -> String {
        let header = |first: &str| {
            let mut out = format!("| {first} | ");
            for (metric, p) in BREAKDOWN {
                let unit = if metric == Metric::EventsPerSecond {
                    ""
                } else {
                    " (ms)"
                };
                match p {
                    Some(p) => {
                        let _ = write!(out, "{}, p{p}{unit} | ", metric.label());
                    }
                    None => {
                        let _ = write!(out, "{} | ", metric.label());
                    }
                }
            }
            out.push('\n');
            out.push_str(&"|---".repeat(BREAKDOWN.len() + 1));
            out.push_str("|\n");
            out
        };
        let mut out = header("build (median, min..max, ÷ floor)");
        for kind in kinds {
            let _ = write!(out, "| {} | ", kind.name());
            for (metric, p) in BREAKDOWN {
                let values = self.per_repeat(metric, *kind, p);
                if values.is_empty() {
                    out.push_str("— | ");
                    continue;
                }
                let (med, min, max) = spread(&values);
                let floor = self.median(metric, Kind::Floor, p);
                let _ = write!(
                    out,
                    "{} ({}..{}) {} | ",
                    num(med),
                    num(min),
                    num(max),
                    ratio(Some(med), floor)
                );
            }
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&header(&format!(
            "what the piece costs: \"{}\" minus this build, paired per repeat (median, min..max)",
            nothing.name()
        )));
        for kind in kinds
            .iter()
            .filter(|k| **k != Kind::Floor && **k != nothing)
        {
            let _ = write!(out, "| {} | ", kind.name());
            for (metric, p) in BREAKDOWN {
                let base = self.per_repeat(metric, nothing, p);
                let cut = self.per_repeat(metric, *kind, p);
                let diffs: Vec<f64> = base
                    .iter()
                    .zip(&cut)
                    .map(|(b, c)| {
                        if metric == Metric::EventsPerSecond {
                            c - b
                        } else {
                            b - c
                        }
                    })
                    .collect();
                if diffs.is_empty() {
                    out.push_str("— | ");
                    continue;
                }
                let (med, min, max) = spread(&diffs);
                let _ = write!(out, "{} ({}..{}) | ", signed(med), signed(min), signed(max));
            }
            out.push('\n');
        }
        out
    }
}

/// [`num`] with a minus sign for negative numbers.
fn signed(x: f64) -> String {
    if x < 0.0 {
        format!("−{}", num(-x))
    } else {
        num(x)
    }
}
