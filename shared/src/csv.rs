//! Writing CSV (RFC 4180) for exports: quoted where needed, CRLF line ends.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One CSV record with its line end.
pub fn line(fields: &[&str]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
    out
}

/// An instant as RFC 3339 text.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(super::line(&["a", "b,c", "say \"hi\"", "x\ny"]), "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\"\r\n");
    }
}
