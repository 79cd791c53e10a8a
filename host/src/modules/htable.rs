//! `KSR.htable`: named in-memory hash tables with optional auto-expiry, defined like
//! Kamailio's `modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::export;
use crate::kemi::{n, s, Ctx, Export, Val};

struct Table {
    autoexpire: Option<Duration>,
    items: HashMap<String, (Val, Option<Instant>)>,
}

/// All tables of the server.
#[derive(Default)]
pub struct Htables {
    tables: Mutex<HashMap<String, Table>>,
}

impl Htables {
    /// Parses the `htable` definitions (`name=>size=N;autoexpire=S;...`).
    pub fn from_config(cfg: &Config) -> Result<Htables, String> {
        let mut tables = HashMap::new();
        for def in cfg.modparam_strs("htable", "htable") {
            let def = def.trim().trim_end_matches(';');
            if def.is_empty() {
                continue;
            }
            let (name, attrs) = def
                .split_once("=>")
                .ok_or_else(|| format!("htable: `{def}`: expected name=>attributes"))?;
            let mut autoexpire = None;
            for a in attrs.split(';').filter(|a| !a.trim().is_empty()) {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| format!("htable: `{a}` in `{def}`"))?;
                match k.trim() {
                    "autoexpire" => {
                        let secs: u64 = v
                            .trim()
                            .parse()
                            .map_err(|_| format!("htable: autoexpire `{v}`"))?;
                        autoexpire = (secs > 0).then(|| Duration::from_secs(secs));
                    }
                    // Sizes, db bindings and the like do not change the semantics here.
                    "size" | "dbtable" | "dbmode" | "initval" | "updateexpire" | "dmqreplicate" => {
                    }
                    other => return Err(format!("htable: unknown attribute `{other}` in `{def}`")),
                }
            }
            tables.insert(
                name.trim().to_string(),
                Table {
                    autoexpire,
                    items: HashMap::new(),
                },
            );
        }
        Ok(Htables {
            tables: Mutex::new(tables),
        })
    }

    fn with<T>(&self, table: &str, f: impl FnOnce(&mut Table) -> T) -> Option<T> {
        let mut g = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let t = g.get_mut(table)?;
        let now = Instant::now();
        if t.autoexpire.is_some() {
            t.items.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
        }
        Some(f(t))
    }

    pub fn get(&self, table: &str, key: &str) -> Option<Val> {
        self.with(table, |t| t.items.get(key).map(|(v, _)| v.clone()))
            .flatten()
    }

    pub fn set(&self, table: &str, key: &str, v: Val) -> bool {
        self.with(table, |t| {
            let exp = t.autoexpire.map(|d| Instant::now() + d);
            t.items.insert(key.to_string(), (v, exp));
        })
        .is_some()
    }
}

fn ht(c: &Ctx) -> &Htables {
    &c.env.htables
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("htable", "sht_get", [Str, Str], XVal, |c, a| Ok(ht(c)
            .get(s(a, 0), s(a, 1))
            .unwrap_or(Val::None))),
        export!("htable", "sht_gete", [Str, Str], XVal, |c, a| {
            Ok(ht(c)
                .get(s(a, 0), s(a, 1))
                .unwrap_or(Val::Str(String::new())))
        }),
        export!("htable", "sht_getw", [Str, Str], XVal, |c, a| {
            Ok(ht(c)
                .get(s(a, 0), s(a, 1))
                .unwrap_or(Val::Str("<null>".into())))
        }),
        export!("htable", "sht_sets", [Str, Str, Str], Int, |c, a| {
            let v = Val::Str(s(a, 2).to_string());
            Ok(Val::Int(if ht(c).set(s(a, 0), s(a, 1), v) {
                1
            } else {
                -1
            }))
        }),
        export!("htable", "sht_seti", [Str, Str, Int], Int, |c, a| {
            Ok(Val::Int(
                if ht(c).set(s(a, 0), s(a, 1), Val::Int(n(a, 2))) {
                    1
                } else {
                    -1
                },
            ))
        }),
        export!("htable", "sht_rm", [Str, Str], Int, |c, a| {
            let key = s(a, 1).to_string();
            Ok(Val::Int(
                match ht(c).with(s(a, 0), |t| t.items.remove(&key)) {
                    Some(_) => 1,
                    None => -1,
                },
            ))
        }),
        export!("htable", "sht_reset", [Str], Int, |c, a| {
            Ok(Val::Int(
                if ht(c).with(s(a, 0), |t| t.items.clear()).is_some() {
                    1
                } else {
                    -1
                },
            ))
        }),
        export!("htable", "sht_inc", [Str, Str], Int, |c, a| Ok(Val::Int(
            add(c, s(a, 0), s(a, 1), 1)
        ))),
        export!("htable", "sht_dec", [Str, Str], Int, |c, a| Ok(Val::Int(
            add(c, s(a, 0), s(a, 1), -1)
        ))),
        export!("htable", "sht_match_name", [Str, Str, Str], Int, |c, a| {
            let (op, v) = (s(a, 1).to_string(), s(a, 2).to_string());
            let re = (op == "re").then(|| regex::Regex::new(&v).ok()).flatten();
            let found = ht(c).with(s(a, 0), |t| {
                t.items.keys().any(|k| match op.as_str() {
                    "eq" => *k == v,
                    "ne" => *k != v,
                    "sw" => k.starts_with(v.as_str()),
                    "re" => re.as_ref().is_some_and(|r| r.is_match(k)),
                    _ => false,
                })
            });
            Ok(Val::Int(if found == Some(true) { 1 } else { -1 }))
        }),
        export!("htable", "sht_has_name", [Str, Str, Str], Int, |c, a| {
            let (op, v) = (s(a, 1).to_string(), s(a, 2).to_string());
            let found = ht(c).with(s(a, 0), |t| {
                t.items
                    .keys()
                    .any(|k| (op == "eq" && *k == v) || (op == "sw" && k.starts_with(v.as_str())))
            });
            Ok(Val::Int(if found == Some(true) { 1 } else { -1 }))
        }),
    ]
}

/// sht_inc/sht_dec: the new value (an absent key counts as 0).
fn add(c: &Ctx, table: &str, key: &str, d: i64) -> i64 {
    ht(c)
        .with(table, |t| {
            let exp = t.autoexpire.map(|x| Instant::now() + x);
            let cur = match t.items.get(key) {
                Some((Val::Int(i), _)) => *i,
                Some((Val::Str(s), _)) => s.parse().unwrap_or(0),
                _ => 0,
            };
            t.items.insert(key.to_string(), (Val::Int(cur + d), exp));
            cur + d
        })
        .unwrap_or(-1)
}
