//! SQLite store with Kamailio's `location` schema (usrloc), so a Kamailio operator's
//! tools and queries keep working.

use std::sync::Mutex;

use rusqlite::{params, Connection};

use super::{LocationStore, StoreError};
use crate::modules::usrloc::Contact;

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Table columns as in Kamailio's `location` (usrloc) schema; `expires` and
/// `last_modified` are `YYYY-MM-DD HH:MM:SS` UTC as Kamailio writes them.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS {T} (
    id INTEGER PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 1 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags INTEGER DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INTEGER DEFAULT 0 NOT NULL,
    server_id INTEGER DEFAULT 0 NOT NULL,
    connection_id INTEGER DEFAULT 0 NOT NULL,
    keepalive INTEGER DEFAULT 0 NOT NULL,
    partition INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT {T}_ruid_idx UNIQUE (ruid)
);
CREATE INDEX IF NOT EXISTS {T}_account_contact_idx ON {T} (username, domain, contact);
CREATE INDEX IF NOT EXISTS {T}_expires_idx ON {T} (expires);";

fn valid_table(t: &str) -> Result<(), StoreError> {
    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        Ok(())
    } else {
        Err(StoreError::Db(format!("bad table name `{t}`")))
    }
}

/// Unix seconds to Kamailio's datetime text (UTC).
pub fn to_datetime(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Kamailio's datetime text (UTC) to unix seconds.
pub fn from_datetime(s: &str) -> Option<u64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86400 + hh * 3600 + mm * 60 + ss).ok()
}

impl SqliteStore {
    pub fn open(path: &std::path::Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn ensure(&self, conn: &Connection, table: &str) -> Result<(), StoreError> {
        valid_table(table)?;
        conn.execute_batch(&SCHEMA.replace("{T}", table))
            .map_err(db)
    }
}

impl LocationStore for SqliteStore {
    fn load(&self, table: &str) -> Result<Vec<Contact>, StoreError> {
        let conn = self.conn.lock().map_err(|_| db("lock poisoned"))?;
        self.ensure(&conn, table)?;
        let mut st = conn
            .prepare(&format!(
                "SELECT ruid, username, domain, contact, received, path, expires, q, callid, cseq, \
                 last_modified, flags, cflags, user_agent, socket, methods, instance, reg_id FROM {table}"
            ))
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                let username: String = r.get(1)?;
                let domain: Option<String> = r.get(2)?;
                Ok(Contact {
                    ruid: r.get(0)?,
                    aor: match domain {
                        Some(d) if !d.is_empty() => format!("{username}@{d}"),
                        _ => username,
                    },
                    uri: r.get(3)?,
                    received: r.get(4)?,
                    path: r.get(5)?,
                    expires: from_datetime(&r.get::<_, String>(6)?).unwrap_or(0),
                    q: r.get(7)?,
                    callid: r.get(8)?,
                    cseq: r.get::<_, i64>(9)? as u32,
                    last_modified: from_datetime(&r.get::<_, String>(10)?).unwrap_or(0),
                    flags: r.get::<_, i64>(11)? as u32,
                    cflags: r.get::<_, i64>(12)? as u32,
                    user_agent: r.get(13)?,
                    socket: r.get(14)?,
                    methods: r.get::<_, Option<i64>>(15)?.map(|m| m as u32),
                    instance: r.get(16)?,
                    reg_id: r.get::<_, i64>(17)? as u32,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn sync(&self, table: &str, upsert: &[Contact], delete: &[String]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().map_err(|_| db("lock poisoned"))?;
        self.ensure(&conn, table)?;
        let tx = conn.transaction().map_err(db)?;
        {
            let mut del = tx
                .prepare(&format!("DELETE FROM {table} WHERE ruid = ?1"))
                .map_err(db)?;
            for r in delete {
                del.execute(params![r]).map_err(db)?;
            }
            let mut up = tx
                .prepare(&format!(
                    "INSERT INTO {table} (ruid, username, domain, contact, received, path, expires, q, callid, cseq, \
                     last_modified, flags, cflags, user_agent, socket, methods, instance, reg_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
                     ON CONFLICT(ruid) DO UPDATE SET contact = excluded.contact, received = excluded.received, \
                     path = excluded.path, expires = excluded.expires, q = excluded.q, callid = excluded.callid, \
                     cseq = excluded.cseq, last_modified = excluded.last_modified, flags = excluded.flags, \
                     cflags = excluded.cflags, user_agent = excluded.user_agent, socket = excluded.socket, \
                     methods = excluded.methods, instance = excluded.instance, reg_id = excluded.reg_id"
                ))
                .map_err(db)?;
            for c in upsert {
                let (user, domain) = match c.aor.split_once('@') {
                    Some((u, d)) => (u.to_string(), Some(d.to_string())),
                    None => (c.aor.clone(), None),
                };
                up.execute(params![
                    c.ruid,
                    user,
                    domain,
                    c.uri,
                    c.received,
                    c.path,
                    to_datetime(c.expires),
                    c.q,
                    c.callid,
                    c.cseq as i64,
                    to_datetime(c.last_modified),
                    c.flags as i64,
                    c.cflags as i64,
                    c.user_agent,
                    c.socket,
                    c.methods.map(|m| m as i64),
                    c.instance,
                    c.reg_id as i64,
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trip() {
        assert_eq!(to_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(to_datetime(1_795_751_397), "2026-11-27 03:49:57");
        for t in [0u64, 951_782_400, 1_795_751_397, 4_102_444_800] {
            assert_eq!(from_datetime(&to_datetime(t)), Some(t));
        }
    }
}
