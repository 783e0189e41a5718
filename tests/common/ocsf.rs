//! OCSF 1.1.0 validation driven by the schema's own source: `tests/fixtures/ocsf-schema-1.1.0`
//! is the dictionary, categories, objects, includes, profiles and the IAM and Application
//! classes of ocsf/ocsf-schema at tag v1.1.0 (Apache-2.0, its LICENSE and NOTICE beside them),
//! unchanged. Classes and objects are compiled as the OCSF server does (`extends` chains,
//! `$include`d attribute sets, profile annotations), then each event is checked for: its class,
//! category and type ids; required attributes (those of a profile only when the event lists the
//! profile); attributes the class or object does not define; data types (strings, integers,
//! booleans, and every type the dictionary gives a `regex` or a `range` checked with that very
//! regex or range — `datetime_t`, `ip_t`, `email_t`, `hostname_t`, `mac_t`, `uuid_t`, `port_t`
//! — plus an RFC 3339 and an IP address parse); enum ids and their sibling captions (any text for
//! 99, Other); `at_least_one` and `just_one` constraints; the datetime profile's `_dt` siblings;
//! null values; and observables (type ids as the server derives them, names that point at the
//! value they carry).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value};

type Attrs = Map<String, Value>;

struct Def {
    caption: String,
    attrs: Attrs,
    constraints: Map<String, Value>,
}

struct Schema {
    dict: Attrs,
    types: Attrs,
    objects: HashMap<String, Def>,
    classes: HashMap<i64, Def>,
    profiles: Vec<String>,
    /// The dictionary's patterns and ranges by type name.
    patterns: HashMap<String, regex_lite::Regex>,
    ranges: HashMap<String, (i64, i64)>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocsf-schema-1.1.0")
}

fn read(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(json_files(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out
}

/// Field by field: what `over` says about an attribute replaces what `base` said (enums add).
fn merge(base: &mut Attrs, over: &Attrs) {
    for (k, v) in over {
        if k == "$include" {
            continue;
        }
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => {
                for (x, y) in o {
                    // A class's enum items add to (or recaption) its parent's.
                    match (b.get_mut(x), y) {
                        (Some(Value::Object(be)), Value::Object(ye)) if x == "enum" => {
                            be.extend(ye.clone())
                        }
                        _ => {
                            b.insert(x.clone(), y.clone());
                        }
                    }
                }
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A file's attributes: its `$include`s (a profile's marked with the profile), then its own.
fn own_attrs(file: &Value) -> Attrs {
    let mut out = Attrs::new();
    let Some(attrs) = file["attributes"].as_object() else {
        return out;
    };
    let includes = match &attrs.get("$include") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    for inc in includes {
        let f = read(&root().join(&inc));
        let mut a = own_attrs(&f);
        if f["meta"] == "profile" {
            for def in a.values_mut().filter_map(Value::as_object_mut) {
                def.entry("profile").or_insert(f["name"].clone());
            }
        }
        merge(&mut out, &a);
    }
    merge(&mut out, attrs);
    out
}

/// A class or object with everything it inherits.
fn compile(name: &str, files: &HashMap<String, Value>) -> Def {
    let f = &files[name];
    let mut def = match f["extends"].as_str() {
        Some(parent) if files.contains_key(parent) => compile(parent, files),
        _ => Def {
            caption: String::new(),
            attrs: Attrs::new(),
            constraints: Map::new(),
        },
    };
    merge(&mut def.attrs, &own_attrs(f));
    if let Some(c) = f["constraints"].as_object() {
        def.constraints = c.clone();
    }
    def.caption = f["caption"].as_str().unwrap_or_default().to_string();
    def
}

fn by_name(dir: &Path) -> HashMap<String, Value> {
    json_files(dir)
        .into_iter()
        .map(|p| {
            let v = read(&p);
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn load() -> Schema {
    let r = root();
    let dictionary = read(&r.join("dictionary.json"));
    let dict = dictionary["attributes"].as_object().unwrap().clone();
    let types = dictionary["types"]["attributes"]
        .as_object()
        .unwrap()
        .clone();
    let object_files = by_name(&r.join("objects"));
    let mut objects: HashMap<String, Def> = object_files
        .keys()
        .map(|n| (n.clone(), compile(n, &object_files)))
        .collect();
    observable_types(&mut objects, &types, &object_files);
    let categories = read(&r.join("categories.json"));
    let event_files = by_name(&r.join("events"));
    let mut classes = HashMap::new();
    for (name, f) in &event_files {
        let Some(uid) = f["uid"].as_i64() else {
            continue;
        };
        let mut at = f;
        let category = loop {
            if let Some(c) = at["category"].as_str() {
                break c;
            }
            at = &event_files[at["extends"].as_str().unwrap()];
        };
        let cat_uid = categories["attributes"][category]["uid"].as_i64().unwrap();
        classes.insert(cat_uid * 1000 + uid, compile(name, &event_files));
    }
    let profiles = json_files(&r.join("profiles"))
        .iter()
        .map(|p| read(p)["name"].as_str().unwrap().to_string())
        .collect();
    let (patterns, ranges) = type_rules(&types);
    Schema {
        dict,
        types,
        objects,
        classes,
        profiles,
        patterns,
        ranges,
    }
}

/// The `regex` and `range` the dictionary gives its types, compiled.
fn type_rules(
    types: &Attrs,
) -> (
    HashMap<String, regex_lite::Regex>,
    HashMap<String, (i64, i64)>,
) {
    let mut patterns = HashMap::new();
    let mut ranges = HashMap::new();
    for (name, t) in types {
        if let Some(re) = t["regex"].as_str() {
            let compiled = regex_lite::Regex::new(re)
                .unwrap_or_else(|e| panic!("the schema's regex for {name}: {e}"));
            patterns.insert(name.clone(), compiled);
        }
        if let Some([lo, hi]) = t["range"].as_array().map(|r| r.as_slice()) {
            ranges.insert(name.clone(), (lo.as_i64().unwrap(), hi.as_i64().unwrap()));
        }
    }
    (patterns, ranges)
}

/// The observable type ids, as the server derives them: from the types and objects that name
/// an `observable` number, captioned as they are.
fn observable_types(
    objects: &mut HashMap<String, Def>,
    types: &Attrs,
    files: &HashMap<String, Value>,
) {
    let mut ids = Map::new();
    let sources = types.values().chain(files.values());
    for t in sources {
        if let Some(n) = t["observable"].as_i64() {
            ids.insert(
                n.to_string(),
                serde_json::json!({ "caption": t["caption"] }),
            );
        }
    }
    let o = objects.get_mut("observable").unwrap();
    let type_id = o.attrs["type_id"].as_object_mut().unwrap();
    let e = type_id.entry("enum").or_insert(Value::Object(Map::new()));
    e.as_object_mut().unwrap().extend(ids);
}

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(load)
}

/// Every violation of OCSF 1.1.0 in one event (empty: valid).
pub fn validate(doc: &Value) -> Vec<String> {
    let s = schema();
    let mut errs = Vec::new();
    let uid = doc["class_uid"].as_i64().unwrap_or(-1);
    let Some(class) = s.classes.get(&uid) else {
        return vec![format!(
            "class_uid {} is not an OCSF 1.1.0 class",
            doc["class_uid"]
        )];
    };
    let profiles: Vec<&str> = doc["metadata"]["profiles"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for p in &profiles {
        if !s.profiles.iter().any(|x| x == p) {
            errs.push(format!(
                "metadata.profiles: {p} is not an OCSF 1.1.0 profile"
            ));
        }
    }
    let cx = Cx { s, profiles };
    cx.object(class, doc, "", &mut errs);
    if doc["class_name"].as_str() != Some(class.caption.as_str()) {
        errs.push(format!(
            "class_name {} is not {}",
            doc["class_name"], class.caption
        ));
    }
    let categories = read(&root().join("categories.json"));
    let category = categories["attributes"]
        .as_object()
        .and_then(|c| c.values().find(|c| c["uid"].as_i64() == Some(uid / 1000)));
    if doc["category_name"] != category.map_or(Value::Null, |c| c["caption"].clone()) {
        errs.push(format!(
            "category_name {} for class {uid}",
            doc["category_name"]
        ));
    }
    if doc["category_uid"].as_i64() != Some(uid / 1000) {
        errs.push(format!(
            "category_uid {} for class {uid}",
            doc["category_uid"]
        ));
    }
    let activity = doc["activity_id"].as_i64().unwrap_or(-1);
    if doc["type_uid"].as_i64() != Some(uid * 100 + activity) {
        errs.push(format!(
            "type_uid {} is not class_uid * 100 + activity_id",
            doc["type_uid"]
        ));
    }
    observables(doc, &mut errs);
    errs
}

struct Cx<'a> {
    s: &'a Schema,
    profiles: Vec<&'a str>,
}

impl Cx<'_> {
    fn enabled(&self, def: &Value) -> bool {
        def["profile"]
            .as_str()
            .is_none_or(|p| self.profiles.contains(&p))
    }

    fn type_of<'d>(&'d self, k: &str, def: &'d Value) -> (&'d str, bool) {
        let d = self.s.dict.get(k).unwrap_or(&Value::Null);
        let ty = def["type"].as_str().or(d["type"].as_str()).unwrap_or("");
        let array = def["is_array"]
            .as_bool()
            .or(d["is_array"].as_bool())
            .unwrap_or(false);
        (ty, array)
    }

    fn object(&self, def: &Def, v: &Value, path: &str, errs: &mut Vec<String>) {
        let Some(m) = v.as_object() else {
            errs.push(format!("{path}: not an object"));
            return;
        };
        for (k, x) in m {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if x.is_null() {
                errs.push(format!("{p}: null (leave it out)"));
                continue;
            }
            match def.attrs.get(k) {
                Some(a) if self.s.dict.contains_key(k) => {
                    if !self.enabled(a) {
                        errs.push(format!(
                            "{p}: of profile {}, not in metadata.profiles",
                            a["profile"]
                        ));
                    }
                    let (ty, array) = self.type_of(k, a);
                    self.value(ty, array, x, &p, errs);
                }
                Some(_) => errs.push(format!("{p}: not in the dictionary")),
                None => self.undefined(def, k, x, &p, errs),
            }
        }
        for (k, a) in &def.attrs {
            let absent = m.get(k).is_none_or(Value::is_null);
            if a["requirement"] == "required" && self.enabled(a) && absent {
                errs.push(format!("{path}.{k}: required, missing"));
            }
        }
        self.constraints(def, m, path, errs);
        self.enums(def, m, path, errs);
    }

    /// An attribute the object does not define: only a datetime profile `_dt` sibling may be.
    fn undefined(&self, def: &Def, k: &str, x: &Value, p: &str, errs: &mut Vec<String>) {
        let ts = k
            .strip_suffix("_dt")
            .and_then(|base| def.attrs.get(base).map(|a| (base, a)));
        match ts {
            Some((base, a))
                if self.profiles.contains(&"datetime")
                    && self.type_of(base, a).0 == "timestamp_t" =>
            {
                self.value("datetime_t", false, x, p, errs)
            }
            _ => errs.push(format!("{p}: not an attribute of this object")),
        }
    }

    fn constraints(&self, def: &Def, m: &Map<String, Value>, path: &str, errs: &mut Vec<String>) {
        for (kind, list) in &def.constraints {
            let names: Vec<&str> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let present = names
                .iter()
                .filter(|n| m.get(**n).is_some_and(|v| !v.is_null()))
                .count();
            let ok = match kind.as_str() {
                "at_least_one" => present >= 1,
                "just_one" => present == 1,
                _ => true,
            };
            if !ok {
                errs.push(format!("{path}: {kind} of {names:?} ({present} present)"));
            }
        }
    }

    fn enums(&self, def: &Def, m: &Map<String, Value>, path: &str, errs: &mut Vec<String>) {
        for (k, a) in &def.attrs {
            if ["class_uid", "category_uid", "type_uid"].contains(&k.as_str()) {
                continue; // the server fills these enums in; `validate` checks them itself
            }
            let (Some(e), Some(v)) = (a["enum"].as_object(), m.get(k)) else {
                continue;
            };
            let Some(id) = v.as_i64() else {
                continue; // the type check said so
            };
            let Some(item) = e.get(&id.to_string()) else {
                errs.push(format!(
                    "{path}.{k}: {id} is not one of {:?}",
                    e.keys().collect::<Vec<_>>()
                ));
                continue;
            };
            let sibling =
                a["sibling"]
                    .as_str()
                    .or(self.s.dict.get(k).and_then(|d| d["sibling"].as_str()));
            if let Some(sv) = sibling.and_then(|s| m.get(s))
                && id != 99
                && sv != &item["caption"]
            {
                errs.push(format!(
                    "{path}.{}: {sv} is not {}'s caption {}",
                    sibling.unwrap_or(""),
                    id,
                    item["caption"]
                ));
            }
        }
    }

    fn value(&self, ty: &str, array: bool, x: &Value, p: &str, errs: &mut Vec<String>) {
        if array {
            match x.as_array() {
                Some(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| self.one(ty, v, &format!("{p}[{i}]"), errs)),
                None => errs.push(format!("{p}: not an array")),
            }
        } else {
            self.one(ty, x, p, errs);
        }
    }

    fn one(&self, ty: &str, x: &Value, p: &str, errs: &mut Vec<String>) {
        if ty == "object" {
            if !x.is_object() {
                errs.push(format!("{p}: not an object"));
            }
            return;
        }
        if let Some(def) = self.s.objects.get(ty) {
            return self.object(def, x, p, errs);
        }
        let mut base = ty;
        while let Some(t) = self.s.types.get(base).and_then(|t| t["type"].as_str()) {
            base = t;
        }
        let ok = match base {
            "string_t" => x.is_string(),
            "integer_t" | "long_t" => x.is_i64() || x.is_u64(),
            "float_t" => x.is_number(),
            "boolean_t" => x.is_boolean(),
            "json_t" => true,
            _ => {
                errs.push(format!("{p}: unknown type {ty}"));
                return;
            }
        };
        let text = x.as_str().unwrap_or_default();
        let ok =
            ok && match ty {
                "datetime_t" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                "ip_t" => text.parse::<std::net::IpAddr>().is_ok(),
                _ => true,
            } && self.s.patterns.get(ty).is_none_or(|re| re.is_match(text))
                && self
                    .s
                    .ranges
                    .get(ty)
                    .is_none_or(|(lo, hi)| x.as_i64().is_some_and(|n| (*lo..=*hi).contains(&n)));
        if !ok {
            errs.push(format!("{p}: {x} is not a {ty}"));
        }
    }
}

/// Each observable's name points at an attribute of the event that holds its value.
fn observables(doc: &Value, errs: &mut Vec<String>) {
    for (i, o) in doc["observables"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (Some(name), Some(value)) = (o["name"].as_str(), o.get("value")) else {
            continue;
        };
        let mut at = vec![doc];
        for part in name.split('.') {
            at = at
                .into_iter()
                .flat_map(|v| match &v[part] {
                    Value::Array(a) => a.iter().collect::<Vec<_>>(),
                    Value::Null => vec![],
                    x => vec![x],
                })
                .collect();
        }
        if !at.contains(&value) {
            errs.push(format!("observables[{i}]: {name} does not hold {value}"));
        }
    }
}

/// How many events of each class, and every violation found, over `docs`.
/// Events by class, and each invalid event's uid with its violations.
pub type Summary = (BTreeMap<i64, usize>, Vec<(Value, Vec<String>)>);

pub fn summary(docs: &[Value]) -> Summary {
    let mut classes = BTreeMap::new();
    let mut invalid = Vec::new();
    for d in docs {
        *classes
            .entry(d["class_uid"].as_i64().unwrap_or(0))
            .or_insert(0) += 1;
        let e = validate(d);
        if !e.is_empty() {
            invalid.push((d["metadata"]["uid"].clone(), e));
        }
    }
    (classes, invalid)
}
