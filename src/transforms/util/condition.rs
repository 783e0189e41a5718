//! Event conditions shared by `filter` and `route`: all given keys must match.

use serde::Deserialize;

use crate::config::FieldError;
use crate::core::event::{Category, EventData};

/// One value or a list of values (strings, or names like categories).
#[derive(Debug, Clone)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Hand-written (not `untagged`) so the element's own error ("unknown variant `mgmt`,
        // expected one of ...") reaches the user.
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::StrDeserializer::<E>::new(v)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The condition keys as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// `readOnly` of the record.
    pub read_only: Option<bool>,
    /// management, data, insight, network_activity.
    pub category: Option<OneOrMany<Category>>,
    /// AwsApiCall, AwsServiceEvent, AwsConsoleSignIn, AwsCloudTrailInsight, ...
    pub event_type: Option<OneOrMany<String>>,
    /// e.g. "s3.amazonaws.com", "iam.*"
    pub event_source: Option<OneOrMany<String>>,
    /// e.g. "Delete*"
    pub event_name: Option<OneOrMany<String>>,
    /// recipientAccountId
    pub account_id: Option<OneOrMany<String>>,
    /// awsRegion
    pub region: Option<OneOrMany<String>>,
    /// true: the record has an errorCode; false: it has none.
    pub error: Option<bool>,
    /// userIdentity.type: IAMUser, AssumedRole, Root, AWSService, ...
    pub user_type: Option<OneOrMany<String>>,
}

/// A compiled string pattern: exact, or a glob with `*` and `?`.
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Glob(globset::GlobMatcher),
}

#[derive(Debug, Clone)]
struct Patterns(Vec<Pattern>);

impl Patterns {
    fn compile(key: &str, v: Option<OneOrMany<String>>) -> Result<Option<Patterns>, FieldError> {
        let Some(v) = v else { return Ok(None) };
        let list = v.into_vec();
        if list.is_empty() {
            return Err(FieldError::new(
                &[key],
                "an empty list matches nothing; remove the key instead",
            ));
        }
        let mut out = Vec::new();
        for p in list {
            if p.contains(['*', '?', '[']) {
                let g = globset::GlobBuilder::new(&p)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| FieldError::new(&[key], format!("invalid pattern {p:?}: {e}")))?;
                out.push(Pattern::Glob(g.compile_matcher()));
            } else {
                out.push(Pattern::Exact(p));
            }
        }
        Ok(Some(Patterns(out)))
    }

    fn matches(&self, v: Option<&str>) -> bool {
        let v = v.unwrap_or("");
        self.0.iter().any(|p| match p {
            Pattern::Exact(s) => s == v,
            Pattern::Glob(g) => g.is_match(v),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Condition {
    read_only: Option<bool>,
    category: Option<Vec<Category>>,
    event_type: Option<Patterns>,
    event_source: Option<Patterns>,
    event_name: Option<Patterns>,
    account_id: Option<Patterns>,
    region: Option<Patterns>,
    error: Option<bool>,
    user_type: Option<Patterns>,
}

impl Condition {
    pub fn compile(c: ConditionConfig) -> Result<Condition, FieldError> {
        Ok(Condition {
            read_only: c.read_only,
            category: c.category.map(OneOrMany::into_vec),
            event_type: Patterns::compile("event_type", c.event_type)?,
            event_source: Patterns::compile("event_source", c.event_source)?,
            event_name: Patterns::compile("event_name", c.event_name)?,
            account_id: Patterns::compile("account_id", c.account_id)?,
            region: Patterns::compile("region", c.region)?,
            error: c.error,
            user_type: Patterns::compile("user_type", c.user_type)?,
        })
    }

    /// No keys given: matches everything.
    pub fn is_empty(&self) -> bool {
        self.read_only.is_none()
            && self.category.is_none()
            && self.event_type.is_none()
            && self.event_source.is_none()
            && self.event_name.is_none()
            && self.account_id.is_none()
            && self.region.is_none()
            && self.error.is_none()
            && self.user_type.is_none()
    }

    pub fn matches(&self, e: &EventData) -> bool {
        fn pat(p: &Option<Patterns>, v: Option<&str>) -> bool {
            p.as_ref().is_none_or(|p| p.matches(v))
        }
        // A record without readOnly matches neither `true` nor `false`.
        self.read_only.is_none_or(|r| e.header.read_only == Some(r))
            && self
                .category
                .as_ref()
                .is_none_or(|c| c.contains(&e.category()))
            && self
                .error
                .is_none_or(|want| e.error_code().is_some() == want)
            && pat(&self.event_type, e.event_type())
            && pat(&self.event_source, e.event_source())
            && pat(&self.event_name, e.event_name())
            && pat(&self.account_id, e.account_id())
            && pat(&self.region, e.region())
            && pat(&self.user_type, e.user_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::test_data as ev;

    fn cond(toml_text: &str) -> Condition {
        let c: ConditionConfig = toml::from_str(toml_text).unwrap();
        Condition::compile(c).unwrap()
    }

    #[test]
    fn all_keys_must_match() {
        let e = ev(
            r#"{"eventSource":"iam.amazonaws.com","eventName":"DeleteUser","readOnly":false,"awsRegion":"us-east-1","recipientAccountId":"111","eventType":"AwsApiCall","userIdentity":{"type":"Root"},"errorCode":"AccessDenied"}"#,
        );
        assert!(cond("read_only = false").matches(&e));
        assert!(!cond("read_only = true").matches(&e));
        assert!(cond(r#"event_source = "iam.*""#).matches(&e));
        assert!(cond(r#"event_name = ["Get*", "Delete*"]"#).matches(&e));
        assert!(!cond(r#"event_name = "Get*""#).matches(&e));
        assert!(cond(r#"category = "management""#).matches(&e));
        assert!(!cond(r#"category = ["data", "insight"]"#).matches(&e));
        assert!(
            cond("error = true\nuser_type = \"Root\"\naccount_id = \"111\"\nregion = \"us-*\"")
                .matches(&e)
        );
        assert!(!cond("error = false").matches(&e));
        assert!(!cond("event_type = \"AwsServiceEvent\"").matches(&e));
        assert!(cond("").matches(&e));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<ConditionConfig>("readonly = true").is_err());
        assert!(toml::from_str::<ConditionConfig>("category = \"mgmt\"").is_err());
        let c: ConditionConfig = toml::from_str("event_name = []").unwrap();
        assert!(Condition::compile(c).is_err());
    }
}
