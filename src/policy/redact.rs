//! Secrets out of what the job records: a URL's user info (`user:token@`) and its query string
//! (presigned signatures, SAS tokens) are removed from every URL the manifest, the logs and the
//! error messages show. Plain local paths are left as they are (a `?` is a legal file name byte).

/// `url` without user info, query string or fragment. A string without `://` is returned as it is.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// Whether `url` carries something [`url`] removes.
pub fn has_secret(u: &str) -> bool {
    url(u) != u
}

/// `text` with every URL in it redacted (a URL runs from its scheme to the next space, quote or
/// bracket): for error messages, which may quote a URL inside a sentence.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `-`, `.` right before `://`.
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |p| p + 1);
        let end = rest[i..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']')
            })
            .map_or(rest.len(), |p| i + p);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A command line as the manifest records it: every argument redacted, also `--flag=URL`.
pub fn command_line(argv: &[String]) -> Vec<String> {
    argv.iter().map(|a| text(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_and_query_strings_are_removed() {
        assert_eq!(
            url("s3://bucket/prefix?X-Amz-Signature=abc&X-Amz-Credential=k"),
            "s3://bucket/prefix"
        );
        assert_eq!(
            url("https://user:tok3n@host:9000/a/b?sig=1#f"),
            "https://host:9000/a/b"
        );
        assert_eq!(
            url("az://container/p?sv=2020&sig=SECRET"),
            "az://container/p"
        );
        assert_eq!(url("gs://b"), "gs://b");
        assert_eq!(url("/local/with?mark"), "/local/with?mark");
        assert!(has_secret("s3://b/p?token=x"));
        assert!(!has_secret("s3://b/p"));
    }

    #[test]
    fn urls_inside_messages_are_redacted() {
        assert_eq!(
            text("cannot open \"s3://u:p@b/k?sig=SECRET\": denied"),
            "cannot open \"s3://b/k\": denied"
        );
        assert_eq!(
            text("--roster=https://h/r.csv?token=SECRET and s3://x/y"),
            "--roster=https://h/r.csv and s3://x/y"
        );
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(
            command_line(&[
                "run".into(),
                "--input".into(),
                "s3://b/p?X-Amz-Security-Token=T".into()
            ]),
            vec!["run", "--input", "s3://b/p"]
        );
    }
}
