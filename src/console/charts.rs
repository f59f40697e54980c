//! Charts as inline SVG, drawn here: no script, no library, nothing fetched. Only numbers and
//! dates go into the markup (labels come from the page, which escapes them), every chart has a
//! text alternative, and each bar or point a `<title>` a screen reader or a hover shows.

use std::fmt::Write;

use crate::store::activity::Minute;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// Fill colours by series, the same as the legend's keys (`.s0`, `.s1`, …).
const COLOURS: [&str; 6] = [
    "#1d4ed8", "#d97706", "#dc2626", "#059669", "#7c3aed", "#db2777",
];

/// A round maximum for the axis at or above `max`.
fn nice(max: u64) -> u64 {
    if max <= 5 {
        return 5;
    }
    let magnitude = 10u64.pow(max.ilog10());
    for step in [1, 2, 5, 10] {
        if max <= step * magnitude {
            return step * magnitude;
        }
    }
    max
}

#[allow(clippy::cast_precision_loss)]
fn scale(value: u64, max: u64) -> f64 {
    (value as f64 / max as f64) * (HEIGHT - TOP - BOTTOM)
}

fn open(out: &mut String, label: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">"#
    );
}

fn axis(out: &mut String, max: u64) {
    let base = HEIGHT - BOTTOM;
    // Each line at its own value's height: half of an odd maximum is not a whole number, so
    // the middle line sits where its (rounded down) label says, not halfway.
    for value in [max, max / 2, 0] {
        let y = base - scale(value, max);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" text-anchor="end">{value}</text>"##,
            LEFT - 6.0,
            y + 4.0
        );
    }
}

/// Hand-overs per minute as stacked bars: sent, deferred, refused.
pub fn sends_per_minute(minutes: &[Minute]) -> String {
    let max = nice(
        minutes
            .iter()
            .map(|m| m.sent + m.deferred + m.refused)
            .max()
            .unwrap_or(0),
    );
    let total: u64 = minutes.iter().map(|m| m.sent).sum();
    let mut out = String::new();
    open(
        &mut out,
        &format!(
            "Sends per minute over the last {} minutes: {total} sent in all",
            minutes.len()
        ),
    );
    axis(&mut out, max);
    #[allow(clippy::cast_precision_loss)]
    let slot = (WIDTH - LEFT) / minutes.len().max(1) as f64;
    let base = HEIGHT - BOTTOM;
    for (i, minute) in minutes.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + i as f64 * slot + 1.0;
        let mut y = base;
        let at =
            chrono::DateTime::from_timestamp(i64::try_from(minute.minute * 60).unwrap_or(0), 0)
                .map(|t| t.format("%H:%M UTC").to_string())
                .unwrap_or_default();
        let _ = write!(
            out,
            "<g><title>{at}: {} sent, {} deferred, {} refused</title>",
            minute.sent, minute.deferred, minute.refused
        );
        for (value, colour) in [
            (minute.sent, COLOURS[0]),
            (minute.deferred, COLOURS[1]),
            (minute.refused, COLOURS[2]),
        ] {
            if value == 0 {
                continue;
            }
            let h = scale(value, max).max(1.0);
            y -= h;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                (slot - 2.0).max(1.0)
            );
        }
        out.push_str("</g>");
    }
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{:.1}">{} min ago</text><text x="{WIDTH}" y="{:.1}" text-anchor="end">now</text></svg>"#,
        HEIGHT - 6.0,
        minutes.len(),
        HEIGHT - 6.0
    );
    out
}

/// One line per series over days: `dates[i]` and each series' `values[i]`.
pub fn per_day(label: &str, dates: &[String], series: &[(&str, Vec<u64>)]) -> String {
    let max = nice(
        series
            .iter()
            .flat_map(|(_, values)| values.iter().copied())
            .max()
            .unwrap_or(0),
    );
    let mut out = String::new();
    open(&mut out, label);
    axis(&mut out, max);
    let base = HEIGHT - BOTTOM;
    #[allow(clippy::cast_precision_loss)]
    let step = (WIDTH - LEFT - 8.0) / (dates.len().saturating_sub(1).max(1)) as f64;
    #[allow(clippy::cast_precision_loss)]
    let x = |i: usize| LEFT + 4.0 + i as f64 * step;
    for (n, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), base - scale(*v, max)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, value) in values.iter().enumerate() {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: {value} {name}</title></circle>"#,
                x(i),
                base - scale(*value, max),
                dates.get(i).map_or("", String::as_str)
            );
        }
    }
    if let (Some(first), Some(last)) = (dates.first(), dates.last()) {
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{:.1}">{first}</text><text x="{WIDTH}" y="{:.1}" text-anchor="end">{last}</text>"#,
            HEIGHT - 6.0,
            HEIGHT - 6.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one group per row: `rows[i]` is a label index and its values, drawn as
/// shares of `of[i]` (a rate: opens per delivered). Labels are numbered, not written: the page
/// names row *n* in its own (escaped) legend table.
pub fn rates(label: &str, series: &[&str], rows: &[(u64, Vec<u64>)]) -> String {
    let bar = 10.0;
    let group = bar * series.len() as f64 + 10.0;
    #[allow(clippy::cast_precision_loss)]
    let height = TOP + group * rows.len().max(1) as f64 + BOTTOM;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let span = WIDTH - LEFT - 60.0;
    for (row, (of, values)) in rows.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let top = TOP + row as f64 * group;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">#{}</text>"#,
            LEFT - 6.0,
            top + group / 2.0,
            row + 1
        );
        for (n, value) in values.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let share = if *of == 0 {
                0.0
            } else {
                (*value as f64 / *of as f64).min(1.0)
            };
            #[allow(clippy::cast_precision_loss)]
            let y = top + n as f64 * bar;
            let _ = write!(
                out,
                r#"<rect x="{LEFT}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>#{}: {} {value} of {of} ({:.1} %)</title></rect><text x="{:.1}" y="{:.1}">{:.1} %</text>"#,
                (share * span).max(1.0),
                bar - 2.0,
                COLOURS[n % COLOURS.len()],
                row + 1,
                series.get(n).copied().unwrap_or(""),
                share * 100.0,
                LEFT + (share * span).max(1.0) + 4.0,
                y + bar - 2.0,
                share * 100.0
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_shares_of_their_base() {
        let svg = rates(
            "r",
            &["opens", "clicks"],
            &[(200, vec![50, 10]), (0, vec![0, 0])],
        );
        assert!(svg.contains("#1: opens 50 of 200 (25.0 %)"), "{svg}");
        assert!(svg.contains("#2: clicks 0 of 0 (0.0 %)"), "{svg}");
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice(0), 5);
        assert_eq!(nice(7), 10);
        assert_eq!(nice(130), 200);
        assert_eq!(nice(4_100), 5_000);
    }

    #[test]
    fn each_axis_line_is_at_the_height_of_its_label() {
        let base = HEIGHT - BOTTOM;
        for max in [5, 10, 200] {
            let mut svg = String::new();
            axis(&mut svg, max);
            for value in [max, max / 2, 0] {
                let y = base - scale(value, max);
                assert!(
                    svg.contains(&format!(r#"y1="{y:.1}""#))
                        && svg
                            .contains(&format!(r#"y="{:.1}" text-anchor="end">{value}<"#, y + 4.0)),
                    "{max}: {svg}"
                );
            }
        }
        // The axis of 5: its middle line says 2 and sits at two fifths of the height.
        let mut svg = String::new();
        axis(&mut svg, 5);
        let two = base - (HEIGHT - TOP - BOTTOM) * 2.0 / 5.0;
        assert!(svg.contains(&format!(r#"y1="{two:.1}""#)), "{svg}");
    }

    #[test]
    fn a_bar_per_minute_with_its_numbers_in_words() {
        let minutes: Vec<Minute> = (0..3)
            .map(|i| Minute {
                minute: 29_000_000 + i,
                sent: i * 10,
                deferred: 1,
                refused: 0,
            })
            .collect();
        let svg = sends_per_minute(&minutes);
        assert_eq!(svg.matches("<g>").count(), 3);
        assert!(svg.contains("20 sent, 1 deferred, 0 refused"), "{svg}");
        assert!(
            svg.contains(
                r#"aria-label="Sends per minute over the last 3 minutes: 30 sent in all""#
            )
        );
    }
}
