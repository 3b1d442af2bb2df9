//! The application forms (PDF): file structure.

use super::*;

/// A PDF 1.7 file (PDF 32000-1 §7.5): catalog, page tree, the two fonts, the document
/// information, one page object and content stream per page, the cross-reference table and
/// the trailer. The file identifier is a digest of the content.
pub(super) fn write_pdf(title: &str, pages: &[String]) -> Vec<u8> {
    const FIRST_PAGE: usize = 6;
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", FIRST_PAGE + 2 * i)).collect();
    let font = |name: &str| format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>");
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).into_bytes(),
        font("Helvetica").into_bytes(),
        font("Helvetica-Bold").into_bytes(),
        format!("<< /Title {} /Producer (Signet) >>", literal(&encode(title).0)).into_bytes(),
    ];
    for (i, content) in pages.iter().enumerate() {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources << /Font << /F1 3 0 R \
                 /F2 4 0 R >> >> /Contents {} 0 R >>",
                FIRST_PAGE + 2 * i + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }

    // The binary comment line marks the file as binary for transfer tools (§7.5.2).
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &out);
    let id = hex::encode(&digest.as_ref()[..16]);
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}
