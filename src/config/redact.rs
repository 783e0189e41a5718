//! How a URL from the config is printed: never with its secrets. A password in the userinfo
//! (`http://elastic:PASSWORD@host`), a userinfo that is a token alone (`https://TOKEN@host`),
//! and every query value (`?api_key=…`) become `***`; scheme, user name, host, port and path
//! stay, so the message still says where. `in_text` does the same for every URL inside a
//! message (an HTTP client's error quotes the URL it was sending to).

/// One URL, its secrets masked. Text that is not a URL comes back as it was.
pub fn url(u: &str) -> String {
    let Some(scheme_end) = u.find("://") else {
        return u.to_string();
    };
    let (scheme, rest) = u.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(u.len());
    out.push_str(scheme);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str("***"),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path_query, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match path_query.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None if pair.is_empty() => String::new(),
                    None => "***".to_string(),
                })
                .collect();
            out.push_str(&masked.join("&"));
        }
        None => out.push_str(path_query),
    }
    out.push_str(fragment);
    out
}

/// A message with every URL in it masked (a URL runs from its scheme to the first white
/// space, quote, bracket or comma).
pub fn in_text(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | '<' | '>' | ',');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let len = rest[i..].find(ends).map_or(rest.len() - i, |n| n);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..i + len]));
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_masked_and_the_rest_stays() {
        for (given, shown) in [
            (
                "http://elastic:s3cr3t@host:9200/_bulk",
                "http://elastic:***@host:9200/_bulk",
            ),
            ("https://tok3n@h/in", "https://***@h/in"),
            (
                "https://h/in?api_key=k3y&tenant=t1&flag",
                "https://h/in?api_key=***&tenant=***&***",
            ),
            (
                "http://u:p@h/x?token=z#frag",
                "http://u:***@h/x?token=***#frag",
            ),
            (
                "https://h:8088/services/collector",
                "https://h:8088/services/collector",
            ),
            ("not a url", "not a url"),
            // An `@` in the path is not userinfo.
            ("https://h/a@b", "https://h/a@b"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn every_url_in_a_message_is_masked() {
        let msg = "http://elastic:pw@h:9200/_bulk: error sending request for url (http://elastic:pw@h:9200/_bulk?api_key=k): refused";
        assert_eq!(
            in_text(msg),
            "http://elastic:***@h:9200/_bulk: error sending request for url (http://elastic:***@h:9200/_bulk?api_key=***): refused"
        );
        assert_eq!(in_text("no url here"), "no url here");
        assert_eq!(in_text("é→http://u:p@h/ é"), "é→http://u:***@h/ é");
    }
}
