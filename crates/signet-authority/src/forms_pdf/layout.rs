//! The application forms (PDF): page layout.

use super::*;

pub(super) const PAGE_W: f32 = 612.0;
pub(super) const PAGE_H: f32 = 792.0;
pub(super) const MARGIN: f32 = 50.0;
pub(super) const TITLE: f32 = 17.0;
pub(super) const SECTION: f32 = 9.5;
pub(super) const BODY: f32 = 9.5;
pub(super) const VALUE: f32 = 10.5;
pub(super) const SMALL: f32 = 8.5;
pub(super) const LABEL: f32 = 7.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Self::Regular => "/F1",
            Self::Bold => "/F2",
        }
    }
}

/// A column of the page; `y` is where the next thing goes, moving down.
#[derive(Debug, Clone, Copy)]
pub(super) struct Col {
    pub(super) x: f32,
    pub(super) w: f32,
    pub(super) y: f32,
}

impl Col {
    /// Two columns side by side, the left one `share` of the width, with a gutter.
    pub(super) fn split(&self, share: f32) -> (Col, Col) {
        const GUTTER: f32 = 18.0;
        let left = (self.w - GUTTER) * share;
        (Col { w: left, ..*self }, Col { x: self.x + left + GUTTER, w: self.w - left - GUTTER, y: self.y })
    }
}

/// One page's content stream. Everything written goes through [`encode`] and [`literal`],
/// so the stream is ASCII and no text can end a string early.
#[derive(Default)]
pub(super) struct Page {
    pub(super) ops: String,
}

impl Page {
    pub(super) fn text(&mut self, x: f32, y: f32, font: Font, size: f32, s: &str) {
        self.text_bytes(x, y, font, size, &encode(s).0);
    }

    fn text_bytes(&mut self, x: f32, y: f32, font: Font, size: f32, bytes: &[u8]) {
        let _ = writeln!(self.ops, "BT {} {size:.1} Tf {x:.2} {y:.2} Td {} Tj ET", font.resource(), literal(bytes));
    }

    pub(super) fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        let _ = writeln!(self.ops, "{x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S");
    }

    pub(super) fn rect(&mut self, x: f32, y: f32, w: f32, h: f32) {
        let _ = writeln!(self.ops, "{x:.2} {y:.2} {w:.2} {h:.2} re S");
    }

    pub(super) fn set_gray(&mut self, level: f32) {
        let _ = writeln!(self.ops, "{level:.2} g");
    }

    /// Wrapped text at the column's cursor.
    pub(super) fn para(&mut self, col: &mut Col, font: Font, size: f32, s: &str) {
        let leading = size * 1.3;
        for line in wrap(&encode(s).0, font, size, col.w) {
            col.y -= leading;
            self.text_bytes(col.x, col.y, font, size, &line);
        }
        col.y -= size * 0.5;
    }

    pub(super) fn section(&mut self, col: &mut Col, title: &str) {
        col.y -= 8.0;
        self.para(col, Font::Bold, SECTION, title);
    }

    /// A labelled field: the values printed on their own lines, or an empty line to fill in.
    pub(super) fn field(&mut self, col: &mut Col, label: &str, values: &[&str]) {
        self.set_gray(0.35);
        self.text(col.x, col.y - LABEL, Font::Regular, LABEL, label);
        self.set_gray(0.0);
        let mut y = col.y - LABEL;
        let mut lossy = false;
        for value in values {
            let (bytes, exact) = encode(value);
            lossy |= !exact;
            for line in wrap(&bytes, Font::Regular, VALUE, col.w) {
                y -= VALUE + 3.0;
                self.text_bytes(col.x, y, Font::Regular, VALUE, &line);
            }
        }
        if values.is_empty() {
            // Room to write by hand.
            y -= 20.0;
        }
        self.line(col.x, y - 3.0, col.x + col.w, y - 3.0);
        if lossy {
            y -= LABEL + 4.0;
            self.set_gray(0.35);
            self.text(
                col.x,
                y,
                Font::Regular,
                LABEL,
                "Some characters cannot be printed here: write it above by hand.",
            );
            self.set_gray(0.0);
        }
        col.y = y - 10.0;
    }

    /// Empty fields side by side, each taking its share of the width.
    pub(super) fn row(&mut self, col: &mut Col, cells: &[(&str, f32)]) {
        let cells: Vec<(&str, &[&str], f32)> = cells.iter().map(|&(label, share)| (label, &[][..], share)).collect();
        self.cells(col, &cells);
    }

    /// Pre-filled fields side by side, sharing the width equally.
    pub(super) fn filled_row(&mut self, col: &mut Col, cells: &[(&str, &str)]) {
        let share = 1.0 / cells.len() as f32;
        let values: Vec<[&str; 1]> = cells.iter().map(|&(_, v)| [v]).collect();
        let cells: Vec<(&str, &[&str], f32)> =
            cells.iter().zip(&values).map(|(&(label, _), v)| (label, &v[..], share)).collect();
        self.cells(col, &cells);
    }

    fn cells(&mut self, col: &mut Col, cells: &[(&str, &[&str], f32)]) {
        const GAP: f32 = 14.0;
        let mut x = col.x;
        let mut bottom = col.y;
        for (i, &(label, values, share)) in cells.iter().enumerate() {
            let gap = if i + 1 == cells.len() { 0.0 } else { GAP };
            let mut cell = Col { x, w: col.w * share - gap, y: col.y };
            self.field(&mut cell, label, values);
            bottom = bottom.min(cell.y);
            x += col.w * share;
        }
        col.y = bottom;
    }

    /// The reference and title every page starts with; returns the body column.
    pub(super) fn header(&mut self, f: &Facts, form: PaperForm) -> Col {
        let top = PAGE_H - MARGIN;
        self.set_gray(0.35);
        self.text(MARGIN, top, Font::Regular, SMALL, "Signet ECA certificate application");
        self.set_gray(0.0);
        let reference = format!("Reference {}", f.reference);
        let w = text_width(&encode(&reference).0, Font::Bold, 12.0);
        self.text(PAGE_W - MARGIN - w, top - 2.0, Font::Bold, 12.0, &reference);
        self.text(MARGIN, top - 26.0, Font::Bold, TITLE, form.title());
        let _ = writeln!(self.ops, "1.5 w");
        self.line(MARGIN, top - 34.0, PAGE_W - MARGIN, top - 34.0);
        let _ = writeln!(self.ops, "0.6 w");
        Col { x: MARGIN, w: PAGE_W - 2.0 * MARGIN, y: top - 38.0 }
    }

    /// The notary's acknowledgement, or the in-person registrar's verification for types a
    /// notary may not proof (DESIGN §2: Medium Hardware is proofed in person, not by a notary).
    pub(super) fn attestation(&mut self, col: &mut Col, f: &Facts) {
        col.y -= 10.0;
        let _ = writeln!(self.ops, "1.2 w");
        self.line(col.x, col.y, col.x + col.w, col.y);
        let _ = writeln!(self.ops, "0.6 w");
        match f.rule {
            ProofingRule::NotaryOrRegistrar => {
                self.section(col, "NOTARY ACKNOWLEDGEMENT");
                let top = col.y;
                let seal = 130.0;
                let mut body = Col { w: col.w - seal - 16.0, ..*col };
                self.row(&mut body, &[("State", 0.5), ("County", 0.5)]);
                self.para(
                    &mut body,
                    Font::Regular,
                    SMALL,
                    &format!(
                        "Subscribed and sworn to (or affirmed) before me on the date below by {}, proved to me on \
                         the basis of satisfactory evidence to be the person who appeared before me.",
                        f.name
                    ),
                );
                self.row(&mut body, &[("Notary's signature", 0.65), ("Date", 0.35)]);
                self.row(&mut body, &[("Notary's printed name", 0.6), ("Commission expires", 0.4)]);
                let bottom = body.y;
                let x = col.x + col.w - seal;
                self.rect(x, bottom + 6.0, seal, top - bottom - 12.0);
                self.set_gray(0.35);
                self.text(x + 8.0, top - 20.0, Font::Regular, SMALL, "Notary seal (required)");
                self.set_gray(0.0);
                col.y = bottom;
                self.para(
                    col,
                    Font::Bold,
                    SMALL,
                    "Make sure the notary's official seal is on this page: without it the forms are returned and \
                     must be notarized again.",
                );
            }
            ProofingRule::InPersonRegistrar => {
                self.section(col, "IN-PERSON REGISTRAR VERIFICATION");
                self.para(
                    col,
                    Font::Regular,
                    SMALL,
                    &format!(
                        "{} requires proofing in person before a Signet registrar or Trusted Agent; a notary may \
                         not complete this block. I verified in person that {} is the person named on this form, \
                         against the original documents listed.",
                        f.type_name, f.name
                    ),
                );
                self.row(col, &[("Registrar's printed name", 0.5), ("Registrar or Trusted Agent ID", 0.5)]);
                self.row(col, &[("Registrar's signature", 0.65), ("Date", 0.35)]);
            }
        }
    }

    /// The 30-day rule (DESIGN §2: retrieve within 30 days of the notary signature) and the
    /// date the application's open window ends.
    pub(super) fn deadlines(&mut self, col: &mut Col, f: &Facts) {
        let signer = match f.rule {
            ProofingRule::NotaryOrRegistrar => "the notary signs",
            ProofingRule::InPersonRegistrar => "the registrar verifies you in person",
        };
        col.y -= 6.0;
        self.section(col, "DEADLINES");
        let mut text = format!(
            "Day 1 is the day {signer}. Mail the originals the same day with a tracking number and keep copies. \
             Your certificates must be retrieved within {days} days of that date (by Day {days}), or the \
             application expires and you must start over: retrieve them as soon as your token arrives (about \
             Day 10).",
            days = f.policy.retrieval_days
        );
        if let Some(due) = &f.due {
            text.push(' ');
            text.push_str(due);
        }
        self.para(col, Font::Regular, SMALL, &text);
    }

    /// Where the signed originals go and whom to ask: the applicant holding the printed page
    /// needs nothing else to send it.
    pub(super) fn mail_to(&mut self, col: &mut Col, f: &Facts) {
        col.y -= 2.0;
        self.section(col, "MAIL THE SIGNED ORIGINALS TO");
        // One run of text, not an envelope block: the pages have room for two lines here.
        self.para(col, Font::Bold, SMALL, &f.mail_to.join(", "));
        self.para(col, Font::Regular, SMALL, &f.support);
    }

    pub(super) fn footer(&mut self, f: &Facts, form: PaperForm, n: usize, of: usize) {
        let y = MARGIN - 22.0;
        self.set_gray(0.35);
        let left = format!("Application {} - {} - page {n} of {of}", f.reference, form.title());
        self.text(MARGIN, y, Font::Regular, LABEL, &left);
        let right = format!("Status: {}", f.status_url);
        let w = text_width(&encode(&right).0, Font::Regular, LABEL);
        self.text(PAGE_W - MARGIN - w, y, Font::Regular, LABEL, &right);
        self.set_gray(0.0);
    }
}
