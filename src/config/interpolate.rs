//! `${VAR}` and `${VAR:-default}` from the environment, applied to the config text before it is
//! parsed (so line numbers stay those of the file). `$$` is a literal `$`.

use super::ConfigError;

/// Interpolate `text` using `lookup` (the process environment in production).
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = body.find('}') else {
                errors.push(ConfigError::at_line(
                    lineno + 1,
                    "",
                    "unterminated \"${\" (write \"$$\" for a literal '$')",
                ));
                rest = "";
                break;
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                errors.push(ConfigError::at_line(
                    lineno + 1,
                    "",
                    format!("invalid variable name {name:?} in \"${{{expr}}}\""),
                ));
            } else {
                match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                    (Some(v), _) if v.contains('\n') || v.contains('\r') => errors.push(ConfigError::at_line(
                        lineno + 1,
                        "",
                        format!("environment variable {name} contains a line break, which cannot be interpolated"),
                    )),
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(ConfigError::at_line(
                        lineno + 1,
                        "",
                        format!("environment variable {name} is not set (use \"${{{name}:-default}}\" for a default)"),
                    )),
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "NL" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_defaults() {
        let t = "x = \"${A}\"\ny = \"${B:-dflt}\"\nz = \"$${A} ${EMPTY:-e} ${EMPTY} $5\"\n";
        assert_eq!(
            interpolate(t, env).unwrap(),
            "x = \"alpha\"\ny = \"dflt\"\nz = \"${A} e  $5\"\n"
        );
    }

    #[test]
    fn reports_missing_with_line() {
        let errs = interpolate(
            "a = 1\nb = \"${MISSING}\"\nc = \"${NL}\"\nd=\"${oops\"",
            env,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("MISSING"));
        assert_eq!(errs[1].line, Some(3));
        assert_eq!(errs[2].line, Some(4));
    }
}
