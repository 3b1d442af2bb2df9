//! The applicant status page's timeline picture (DESIGN §2 "Vetting"; seed
//! onboarding guide's table: Day 1 notarized and mailed, ~4 received, ~5 token shipped,
//! ~9 token received, ~10 retrieve, Day 30 deadline), drawn from [`signet_ra::vetting::Timeline`]
//! as an inline SVG.
//!
//! It is an image for everyone: `role="img"` with a `<title>` and a `<desc>` that says in words
//! where the applicant is and how many days remain, and the visible headline says the same.
//! Done, next and upcoming milestones differ in shape (filled circle with a check, diamond,
//! hollow circle) and in their words, not only in colour. Before the forms arrive there is no
//! Day 1 yet, so the open window (45 days from the application) is drawn as its own bar above
//! the 30-day axis. Every piece of text is XML-escaped.

use std::fmt::Write as _;

use signet_ra::vetting::{DeadlineKind, Milestone, MilestoneStatus, Timeline};
use time::Date;

const WIDTH: f32 = 960.0;
const AXIS_LEFT: f32 = 70.0;
const AXIS_RIGHT: f32 = 890.0;
const DONE: &str = "#2e7d32";
const NEXT: &str = "#1256a8";
const LATER: &str = "#6b6b6b";
const DEADLINE: &str = "#b3261e";
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";

/// The timeline as a standalone `<svg>` element, ready to inline in a page.
pub fn timeline_svg(t: &Timeline) -> String {
    let last_day = t.milestones.last().map_or(30, |m| i64::from(m.day)).max(2);
    let open_window = t.today.is_none() && t.deadline.is_some_and(|d| d.kind == DeadlineKind::Open);
    let headline = headline(t, last_day);
    let desc = format!("{headline} {}", milestone_summary(&t.milestones, open_window, last_day));

    let mut body = String::new();
    let mut y = 36.0;
    text(&mut body, 24.0, y, Style { size: 18.0, anchor: Anchor::Start, bold: true, fill: "#1b1b1b" }, &headline);
    y += 22.0;
    if open_window {
        y = open_window_bar(&mut body, t, y + 16.0);
    }
    y = day_axis(&mut body, t, last_day, open_window, y + 14.0);
    y = legend(&mut body, &t.milestones, y + 10.0);
    let height = y + 12.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="signet-timeline-title signet-timeline-desc" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="{FONT}">"#
    );
    let _ = write!(
        svg,
        r#"<title id="signet-timeline-title">Your application timeline</title><desc id="signet-timeline-desc">{}</desc>"#,
        escape(&desc)
    );
    let _ = write!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    svg.push_str(&body);
    svg.push_str("</svg>");
    svg
}

/// The one sentence that matters: where the applicant is and how many days remain.
fn headline(t: &Timeline, last_day: i64) -> String {
    match (t.deadline, t.days_remaining) {
        (Some(d), Some(left)) if d.kind == DeadlineKind::Open => match left {
            0 => format!("Today ({}) is the last day for your signed forms to reach us.", long_date(d.last_day)),
            n => format!("{} for your signed forms to reach us (last day {}).", remain(n), long_date(d.last_day)),
        },
        (Some(d), Some(left)) => {
            let day = t.today.map_or_else(String::new, |day| format!("Day {day} of {last_day}: "));
            match left {
                0 => format!("{day}today ({}) is the last day to retrieve your certificates.", long_date(d.last_day)),
                n => format!("{day}{} to retrieve your certificates (last day {}).", remain(n), long_date(d.last_day)),
            }
        }
        _ if t.milestones.iter().all(|m| m.status == MilestoneStatus::Done) => {
            "All steps are done: your certificates have been retrieved.".to_owned()
        }
        _ => "No deadline is running for this application.".to_owned(),
    }
}

fn remain(n: i64) -> String {
    if n == 1 { "1 day remains".to_owned() } else { format!("{n} days remain") }
}

/// Every milestone in words, grouped by status, for the `<desc>`.
fn milestone_summary(milestones: &[Milestone], open_window: bool, last_day: i64) -> String {
    let group = |status: MilestoneStatus| {
        milestones
            .iter()
            .filter(|m| m.status == status)
            .map(|m| format!("{} ({})", m.label, when(m)))
            .collect::<Vec<_>>()
    };
    let mut out = String::new();
    if open_window {
        let _ = write!(
            out,
            "Day 1 is the day the notary (or registrar) signs your forms; from then you have {last_day} days to retrieve your \
             certificates. "
        );
    }
    for (status, heading) in
        [(MilestoneStatus::Done, "Done"), (MilestoneStatus::Current, "Next"), (MilestoneStatus::Upcoming, "Later")]
    {
        let items = group(status);
        if !items.is_empty() {
            let _ = write!(out, "{heading}: {}. ", items.join("; "));
        }
    }
    out.trim_end().to_owned()
}

/// "Day 1, March 3, 2025" / "around Day 9, expected March 11, 2025".
fn when(m: &Milestone) -> String {
    let day = if m.approximate { format!("around Day {}", m.day) } else { format!("Day {}", m.day) };
    match (m.date, m.status) {
        (Some(d), MilestoneStatus::Done) => format!("{day}, {}", long_date(d)),
        (Some(d), _) => format!("{day}, expected {}", long_date(d)),
        (None, _) => day,
    }
}

/// Before the forms arrive: a countdown bar from today to the open window's last day.
fn open_window_bar(out: &mut String, t: &Timeline, y: f32) -> f32 {
    let (Some(d), Some(left)) = (t.deadline, t.days_remaining) else { return y };
    text(
        out,
        AXIS_LEFT,
        y,
        Style { size: 14.0, anchor: Anchor::Start, bold: true, fill: "#1b1b1b" },
        "Before Day 1: your application is open",
    );
    let bar = y + 14.0;
    let _ = write!(
        out,
        r##"<rect x="{AXIS_LEFT}" y="{bar}" width="{}" height="10" rx="5" fill="#f0d9b5" stroke="#b07d2b"/>"##,
        AXIS_RIGHT - AXIS_LEFT
    );
    today_marker(out, AXIS_LEFT, bar + 5.0, "Today");
    let _ = write!(
        out,
        r##"<path d="M{AXIS_RIGHT} {} v-26 l14 6 l-14 6" fill="{DEADLINE}" stroke="{DEADLINE}" stroke-width="2"/>"##,
        bar + 10.0
    );
    let due = format!("Forms must reach us by {} ({})", long_date(d.last_day), remain(left));
    text(out, AXIS_RIGHT, bar + 43.0, Style { size: 13.0, anchor: Anchor::End, bold: true, fill: DEADLINE }, &due);
    bar + 56.0
}

/// The Day 1 … Day 30 axis with the milestones, the elapsed part and today.
fn day_axis(out: &mut String, t: &Timeline, last_day: i64, open_window: bool, y: f32) -> f32 {
    let x =
        |day: i64| AXIS_LEFT + (day.clamp(1, last_day) - 1) as f32 / (last_day - 1) as f32 * (AXIS_RIGHT - AXIS_LEFT);
    let caption = if open_window {
        format!(
            "Once signed: Day 1 is the notary's (or registrar's) date; certificates must be retrieved by Day {last_day}"
        )
    } else {
        format!("Day 1 is the notary's (or registrar's) date; certificates must be retrieved by Day {last_day}")
    };
    text(out, AXIS_LEFT, y, Style { size: 13.0, anchor: Anchor::Start, bold: false, fill: "#444444" }, &caption);
    let axis = y + 58.0;
    let _ = write!(
        out,
        r##"<line x1="{AXIS_LEFT}" y1="{axis}" x2="{AXIS_RIGHT}" y2="{axis}" stroke="#d0d0d0" stroke-width="8" stroke-linecap="round"/>"##
    );
    for day in 1..=last_day {
        let tx = x(day);
        let _ = write!(
            out,
            r##"<line x1="{tx}" y1="{}" x2="{tx}" y2="{}" stroke="#9a9a9a" stroke-width="1"/>"##,
            axis + 7.0,
            axis + if (day - 1) % 7 == 0 { 14.0 } else { 10.0 }
        );
    }
    if let Some(today) = t.today {
        let _ = write!(
            out,
            r##"<line x1="{AXIS_LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="#1f3f66" stroke-width="8" stroke-linecap="round"/>"##,
            x(today)
        );
    }
    for (i, m) in t.milestones.iter().enumerate() {
        let mx = x(i64::from(m.day));
        // The timeline lists the deadline last.
        let deadline = i + 1 == t.milestones.len();
        let label = match (deadline, m.approximate) {
            (true, _) => format!("Day {} deadline", m.day),
            (false, true) => format!("~{}", m.day),
            (false, false) => format!("Day {}", m.day),
        };
        if deadline {
            let _ = write!(
                out,
                r##"<path d="M{mx} {} v-30 l14 6 l-14 6" fill="{DEADLINE}" stroke="{DEADLINE}" stroke-width="2"/>"##,
                axis - 10.0
            );
            text(
                out,
                mx - 6.0,
                axis - 30.0,
                Style { size: 13.0, anchor: Anchor::End, bold: true, fill: DEADLINE },
                &label,
            );
        } else {
            let bold = m.status == MilestoneStatus::Current;
            text(
                out,
                mx,
                axis - 20.0,
                Style { size: 13.0, anchor: Anchor::Middle, bold, fill: status_colour(m.status) },
                &label,
            );
        }
        let _ = write!(out, r#"<g transform="translate({mx} {axis})">{}</g>"#, marker(m.status));
    }
    if let Some(today) = t.today {
        let label = format!("Today: Day {today}");
        today_marker(out, x(today), axis, &label);
    }
    axis + if t.today.is_some() { 50.0 } else { 22.0 }
}

/// A dashed line across the bar centred at `y`, with an upward triangle and the label below
/// it (the day labels sit above the axis).
fn today_marker(out: &mut String, x: f32, y: f32, label: &str) {
    let _ = write!(
        out,
        r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#1b1b1b" stroke-width="2" stroke-dasharray="4 3"/><path d="M{} {} h12 l-6 -8 z" fill="#1b1b1b"/>"##,
        y - 12.0,
        y + 12.0,
        x - 6.0,
        y + 22.0
    );
    // Near the ends the label grows inwards, so it never leaves the picture.
    let (anchor, tx) = if x < AXIS_LEFT + 60.0 {
        (Anchor::Start, x - 6.0)
    } else if x > AXIS_RIGHT - 60.0 {
        (Anchor::End, x + 6.0)
    } else {
        (Anchor::Middle, x)
    };
    text(out, tx, y + 38.0, Style { size: 13.0, anchor, bold: true, fill: "#1b1b1b" }, label);
}

/// One row per milestone: its marker, day, label and status in words.
fn legend(out: &mut String, milestones: &[Milestone], y: f32) -> f32 {
    let mut y = y;
    for m in milestones {
        y += 28.0;
        let _ = write!(out, r#"<g transform="translate({} {})">{}</g>"#, AXIS_LEFT + 10.0, y - 5.0, marker(m.status));
        let status = match m.status {
            MilestoneStatus::Done => "Done",
            MilestoneStatus::Current => "Next step",
            MilestoneStatus::Upcoming => "Upcoming",
        };
        let day = if m.approximate { format!("~Day {}", m.day) } else { format!("Day {}", m.day) };
        let bold = m.status == MilestoneStatus::Current;
        text(out, AXIS_LEFT + 32.0, y, Style { size: 14.0, anchor: Anchor::Start, bold: true, fill: "#1b1b1b" }, &day);
        text(out, AXIS_LEFT + 110.0, y, Style { size: 14.0, anchor: Anchor::Start, bold, fill: "#1b1b1b" }, m.label);
        let detail = match (m.status, m.date) {
            (MilestoneStatus::Done, Some(d)) => format!("{status}, {}", long_date(d)),
            (_, Some(d)) => format!("{status}, expected {}", long_date(d)),
            (_, None) => status.to_owned(),
        };
        text(
            out,
            AXIS_LEFT + 470.0,
            y,
            Style { size: 14.0, anchor: Anchor::Start, bold, fill: status_colour(m.status) },
            &detail,
        );
    }
    y
}

/// A milestone marker centred on (0, 0): shape, not only colour, tells the status.
fn marker(status: MilestoneStatus) -> String {
    match status {
        MilestoneStatus::Done => format!(
            r##"<circle r="10" fill="{DONE}"/><path d="M-5 0 l3.5 4 l6.5 -8" fill="none" stroke="#ffffff" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round"/>"##
        ),
        MilestoneStatus::Current => format!(
            r##"<path d="M0 -13 l13 13 l-13 13 l-13 -13 z" fill="#ffffff" stroke="{NEXT}" stroke-width="3.5"/><path d="M0 -5 l5 5 l-5 5 l-5 -5 z" fill="{NEXT}"/>"##
        ),
        MilestoneStatus::Upcoming => {
            format!(r##"<circle r="8" fill="#ffffff" stroke="{LATER}" stroke-width="2.5"/>"##)
        }
    }
}

fn status_colour(status: MilestoneStatus) -> &'static str {
    match status {
        MilestoneStatus::Done => DONE,
        MilestoneStatus::Current => NEXT,
        MilestoneStatus::Upcoming => LATER,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Style {
    size: f32,
    anchor: Anchor,
    bold: bool,
    fill: &'static str,
}

fn text(out: &mut String, x: f32, y: f32, style: Style, s: &str) {
    let Style { size, anchor, bold, fill } = style;
    let anchor = match anchor {
        Anchor::Start => "start",
        Anchor::Middle => "middle",
        Anchor::End => "end",
    };
    let weight = if bold { "bold" } else { "normal" };
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}">{}</text>"#,
        escape(s)
    );
}

fn long_date(d: Date) -> String {
    format!("{} {}, {}", d.month(), d.day(), d.year())
}

/// XML character data and attribute values: the five predefined entities.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use signet_ra::vetting::Deadline;
    use time::macros::date;

    use super::*;

    fn timeline(kind: DeadlineKind, today: Option<i64>, left: Option<i64>, status: MilestoneStatus) -> Timeline {
        let milestone = |day, label| Milestone { day, approximate: false, label, date: None, status };
        Timeline {
            milestones: vec![milestone(1, "Forms notarized and mailed"), milestone(30, "Deadline")],
            today,
            deadline: left.map(|_| Deadline { kind, last_day: date!(2025 - 04 - 01) }),
            days_remaining: left,
        }
    }

    #[test]
    fn the_headline_counts_the_days_in_words() {
        use DeadlineKind::{Open, Retrieval};
        use MilestoneStatus::{Done, Upcoming};
        let cases = [
            (timeline(Retrieval, Some(30), Some(0), Upcoming), "Day 30 of 30: today (April 1, 2025) is the last day"),
            (timeline(Retrieval, Some(29), Some(1), Upcoming), "Day 29 of 30: 1 day remains to retrieve"),
            (timeline(Open, None, Some(0), Upcoming), "Today (April 1, 2025) is the last day for your signed forms"),
            (timeline(Open, None, Some(2), Upcoming), "2 days remain for your signed forms to reach us"),
            (timeline(Retrieval, Some(40), None, Done), "All steps are done: your certificates have been retrieved."),
        ];
        for (t, expected) in cases {
            assert!(headline(&t, 30).starts_with(expected), "{} / {expected}", headline(&t, 30));
        }
    }

    #[test]
    fn today_past_the_deadline_stays_on_the_axis() {
        let svg = timeline_svg(&timeline(DeadlineKind::Retrieval, Some(40), None, MilestoneStatus::Done));
        assert!(svg.contains(&format!(r#"<line x1="{AXIS_RIGHT}" y1="#)), "clamped to Day 30: {svg}");
        assert!(svg.contains(">Today: Day 40</text>"));
    }

    #[test]
    fn escape_replaces_the_five_predefined_entities() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;"
        );
    }
}
