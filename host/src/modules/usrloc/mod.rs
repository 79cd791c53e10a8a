//! usrloc: the location service. Bindings (AoR → contacts) in memory, expired by a timer,
//! persisted to a [`LocationStore`] as Kamailio's `db_mode` says: 0 memory only,
//! 1 write-through, 2 write-back (flushed every `timer_interval` and at shutdown).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::config::Config;
use crate::store::{open_location_store, LocationStore, StoreError};

/// One registered contact (a row of Kamailio's `location` table).
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    /// Record unique id.
    pub ruid: String,
    /// Address of record: `user` or `user@domain` (with `use_domain`).
    pub aor: String,
    pub uri: String,
    /// Source address the REGISTER came from, as a SIP URI, when behind NAT.
    pub received: Option<String>,
    pub path: Option<String>,
    /// Unix time the binding expires.
    pub expires: u64,
    pub q: f64,
    pub callid: String,
    pub cseq: u32,
    pub last_modified: u64,
    pub flags: u32,
    pub cflags: u32,
    pub user_agent: String,
    /// Local socket the REGISTER arrived on (`proto:ip:port`).
    pub socket: Option<String>,
    /// Methods the UA allows (Kamailio's bitmask); `None`: all.
    pub methods: Option<u32>,
    pub instance: Option<String>,
    pub reg_id: u32,
}

#[derive(Debug, Error)]
pub enum UsrlocError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("usrloc: {0}")]
    Config(String),
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Default)]
struct Table {
    aors: HashMap<String, Vec<Contact>>,
    /// Write-back: ruids changed since the last flush, and ruids deleted.
    dirty: HashSet<String>,
    deleted: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbMode {
    NoDb,
    WriteThrough,
    WriteBack,
}

pub struct Usrloc {
    tables: Mutex<HashMap<String, Table>>,
    store: Option<Box<dyn LocationStore>>,
    pub db_mode: DbMode,
    pub use_domain: bool,
    pub timer_interval: u64,
}

impl Usrloc {
    /// From `[modparam.usrloc]`: `db_url`, `db_mode`, `preload`, `use_domain`,
    /// `timer_interval`.
    pub fn from_config(cfg: &Config) -> Result<Usrloc, UsrlocError> {
        let db_mode = match cfg.modparam_int("usrloc", "db_mode", 0) {
            0 => DbMode::NoDb,
            1 => DbMode::WriteThrough,
            2 => DbMode::WriteBack,
            m => {
                return Err(UsrlocError::Config(format!(
                    "db_mode {m} is not supported (0, 1 or 2)"
                )))
            }
        };
        let path = cfg.sqlite_path("usrloc").map_err(UsrlocError::Config)?;
        let store = match (db_mode, path) {
            (DbMode::NoDb, _) => None,
            (_, None) => return Err(UsrlocError::Config("db_mode needs db_url".into())),
            // `kemibox check` neither creates the database nor loads it.
            (_, Some(_)) if cfg.check_only => None,
            (_, Some(path)) => Some(open_location_store(&path)?),
        };
        let ul = Usrloc {
            tables: Mutex::new(HashMap::new()),
            store,
            db_mode,
            use_domain: cfg.modparam_int("usrloc", "use_domain", 0) != 0,
            timer_interval: cfg.modparam_int("usrloc", "timer_interval", 60).max(1) as u64,
        };
        // Nothing to load from when `kemibox check` left the store closed.
        let preload = if cfg.check_only && ul.store.is_none() {
            ""
        } else {
            cfg.modparam_str("usrloc", "preload", "")
        };
        for t in preload.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            ul.preload(t)?;
        }
        Ok(ul)
    }

    /// A memory-only location service (tests, `db_mode = 0`).
    pub fn in_memory() -> Usrloc {
        Usrloc {
            tables: Mutex::new(HashMap::new()),
            store: None,
            db_mode: DbMode::NoDb,
            use_domain: false,
            timer_interval: 60,
        }
    }

    fn preload(&self, table: &str) -> Result<(), UsrlocError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let now = now();
        let rows = store.load(table)?;
        let mut tables = self.lock();
        let t = tables.entry(table.to_string()).or_default();
        for c in rows.into_iter().filter(|c| c.expires > now) {
            t.aors.entry(c.aor.clone()).or_default().push(c);
        }
        tracing::info!(table, aors = t.aors.len(), "usrloc preloaded");
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Table>> {
        // A panic while holding the lock cannot leave a binding half-written (every
        // change is a whole-vector replace), so a poisoned lock is still usable.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unexpired contacts of an AoR, highest q first.
    pub fn get(&self, table: &str, aor: &str) -> Vec<Contact> {
        let now = now();
        let tables = self.lock();
        let mut v: Vec<Contact> = tables
            .get(table)
            .and_then(|t| t.aors.get(aor))
            .map(|cs| cs.iter().filter(|c| c.expires > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
        v
    }

    /// Replaces the contacts of an AoR (an empty list removes it) and persists the change
    /// as the db_mode says. `memory_only` skips the store (registrar save flag 0x02).
    pub fn set(
        &self,
        table: &str,
        aor: &str,
        contacts: Vec<Contact>,
        memory_only: bool,
    ) -> Result<(), UsrlocError> {
        let (upsert, deleted) = {
            let mut tables = self.lock();
            let t = tables.entry(table.to_string()).or_default();
            let old = t.aors.remove(aor).unwrap_or_default();
            let deleted: Vec<String> = old
                .iter()
                .filter(|o| !contacts.iter().any(|c| c.ruid == o.ruid))
                .map(|o| o.ruid.clone())
                .collect();
            let upsert: Vec<Contact> = contacts
                .iter()
                .filter(|c| !old.contains(c))
                .cloned()
                .collect();
            if !contacts.is_empty() {
                t.aors.insert(aor.to_string(), contacts);
            }
            if self.db_mode == DbMode::WriteBack && !memory_only {
                for c in &upsert {
                    t.dirty.insert(c.ruid.clone());
                }
                for d in &deleted {
                    t.dirty.remove(d);
                    t.deleted.push(d.clone());
                }
            }
            (upsert, deleted)
        };
        if self.db_mode == DbMode::WriteThrough && !memory_only {
            if let Some(s) = &self.store {
                s.sync(table, &upsert, &deleted)?;
            }
        }
        Ok(())
    }

    /// Removes expired bindings (and, in write-back mode, writes pending changes).
    pub fn timer(&self) -> Result<(), UsrlocError> {
        let now = now();
        let mut expired: Vec<(String, Vec<String>)> = Vec::new();
        {
            let mut tables = self.lock();
            for (name, t) in tables.iter_mut() {
                let mut gone = Vec::new();
                t.aors.retain(|_, cs| {
                    cs.retain(|c| {
                        let keep = c.expires > now;
                        if !keep {
                            gone.push(c.ruid.clone());
                        }
                        keep
                    });
                    !cs.is_empty()
                });
                if self.db_mode == DbMode::WriteBack {
                    for g in &gone {
                        t.dirty.remove(g);
                    }
                    t.deleted.extend(gone.iter().cloned());
                } else if !gone.is_empty() {
                    expired.push((name.clone(), gone));
                }
            }
        }
        if self.db_mode == DbMode::WriteThrough {
            if let Some(s) = &self.store {
                for (table, gone) in expired {
                    s.sync(&table, &[], &gone)?;
                }
            }
        }
        self.flush()
    }

    /// Writes pending write-back changes to the store.
    pub fn flush(&self) -> Result<(), UsrlocError> {
        if self.db_mode != DbMode::WriteBack {
            return Ok(());
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        let work: Vec<(String, Vec<Contact>, Vec<String>)> = {
            let mut tables = self.lock();
            tables
                .iter_mut()
                .filter(|(_, t)| !t.dirty.is_empty() || !t.deleted.is_empty())
                .map(|(name, t)| {
                    let dirty: Vec<Contact> = t
                        .aors
                        .values()
                        .flatten()
                        .filter(|c| t.dirty.contains(&c.ruid))
                        .cloned()
                        .collect();
                    t.dirty.clear();
                    (name.clone(), dirty, std::mem::take(&mut t.deleted))
                })
                .collect()
        };
        for (table, up, del) in work {
            store.sync(&table, &up, &del)?;
        }
        Ok(())
    }

    /// Number of AoRs with at least one binding in a table.
    pub fn aor_count(&self, table: &str) -> usize {
        self.lock().get(table).map(|t| t.aors.len()).unwrap_or(0)
    }
}
