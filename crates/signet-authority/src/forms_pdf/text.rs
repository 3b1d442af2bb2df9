//! The application forms (PDF): text.

use super::*;

/// The WinAnsiEncoding code of `c` (PDF 32000-1:2008 Annex D.2), if it has one.
pub(super) fn win_ansi(c: char) -> Option<u8> {
    Some(match c {
        ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(c).ok()?,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => return None,
    })
}

/// `s` in WinAnsi, and whether every character printed as it is. Others lose their accents
/// (the canonical decomposition's encodable part), or, for letters with a stroke that do not
/// decompose, become their base letter, or else `?`.
pub(super) fn encode(s: &str) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(s.len());
    let mut exact = true;
    for c in s.chars() {
        if let Some(b) = win_ansi(c) {
            out.push(b);
            continue;
        }
        exact = false;
        let base: Vec<u8> = std::iter::once(c).nfd().filter_map(win_ansi).collect();
        if !base.is_empty() {
            out.extend(base);
            continue;
        }
        out.push(match c {
            'Ł' => b'L',
            'ł' => b'l',
            'Đ' => b'D',
            'đ' => b'd',
            'Ħ' => b'H',
            'ħ' => b'h',
            'ı' => b'i',
            'Ŧ' => b'T',
            'ŧ' => b't',
            _ => b'?',
        });
    }
    (out, exact)
}

/// A PDF literal string (PDF 32000-1 §7.3.4.2): `(`, `)` and `\` escaped, and every byte
/// outside printable ASCII written as an octal escape, so the stream stays ASCII.
pub(super) fn literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// Helvetica's advance widths for 0x20–0x7E in WinAnsiEncoding (Adobe's AFM; 0x27 is
/// quotesingle and 0x60 grave there), in thousandths of the font size.
pub(super) const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The width of encoded text. Past ASCII and for bold it errs wide, so wrapped lines never
/// run past the margin.
pub(super) fn text_width(bytes: &[u8], font: Font, size: f32) -> f32 {
    let units: u32 = bytes
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => u32::from(HELVETICA[usize::from(b - 0x20)]),
            0x85 | 0x89 | 0x8c | 0x97 | 0x99 | 0x9c | 0xc6 | 0xe6 => 1000,
            _ => 722,
        })
        .sum();
    let bold = if font == Font::Bold { 1.1 } else { 1.0 };
    units as f32 * size * bold / 1000.0
}

/// Breaks encoded text into lines no wider than `width`, at spaces, or inside a word too long
/// for a line of its own.
pub(super) fn wrap(bytes: &[u8], font: Font, size: f32, width: f32) -> Vec<Vec<u8>> {
    let fits = |line: &[u8]| text_width(line, font, size) <= width;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut candidate = line.clone();
        if !candidate.is_empty() {
            candidate.push(b' ');
        }
        candidate.extend_from_slice(word);
        if fits(&candidate) {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for &b in word {
            line.push(b);
            if !fits(&line) {
                let last = line.pop().expect("just pushed");
                lines.push(std::mem::replace(&mut line, vec![last]));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}
