//! acc: transaction accounting on flags, as Kamailio's acc module: when a transaction
//! ends, a request with `log_flag` set is logged (answered calls; failed ones too with
//! `failed_transaction_flag`), and with `log_missed_flag` a failed call is logged as
//! missed. With `db_url` and `db_flag`/`db_missed_flag`, rows go to the `acc` and
//! `missed_calls` tables (Kamailio's schema) as well.

use std::sync::Mutex;

use rusqlite::Connection;

use crate::config::Config;
use crate::kemi::Ctx;
use crate::modules::pv;

pub struct Acc {
    log_flag: Option<u32>,
    missed_flag: Option<u32>,
    failed_flag: Option<u32>,
    db_flag: Option<u32>,
    db_missed_flag: Option<u32>,
    log_extra: Vec<(String, String)>,
    db: Option<Mutex<Connection>>,
}

fn flag(cfg: &Config, key: &str) -> Option<u32> {
    let v = cfg.modparam_int("acc", key, -1);
    (0..32).contains(&v).then_some(v as u32)
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS acc (id INTEGER PRIMARY KEY NOT NULL,
 method VARCHAR(16) DEFAULT '' NOT NULL, from_tag VARCHAR(128) DEFAULT '' NOT NULL,
 to_tag VARCHAR(128) DEFAULT '' NOT NULL, callid VARCHAR(255) DEFAULT '' NOT NULL,
 sip_code VARCHAR(3) DEFAULT '' NOT NULL, sip_reason VARCHAR(128) DEFAULT '' NOT NULL,
 time TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE INDEX IF NOT EXISTS acc_callid_idx ON acc (callid);
CREATE TABLE IF NOT EXISTS missed_calls (id INTEGER PRIMARY KEY NOT NULL,
 method VARCHAR(16) DEFAULT '' NOT NULL, from_tag VARCHAR(128) DEFAULT '' NOT NULL,
 to_tag VARCHAR(128) DEFAULT '' NOT NULL, callid VARCHAR(255) DEFAULT '' NOT NULL,
 sip_code VARCHAR(3) DEFAULT '' NOT NULL, sip_reason VARCHAR(128) DEFAULT '' NOT NULL,
 time TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE INDEX IF NOT EXISTS missed_calls_callid_idx ON missed_calls (callid);";

impl Acc {
    pub fn from_config(cfg: &Config) -> Result<Acc, String> {
        let log_extra = cfg
            .modparam_str("acc", "log_extra", "")
            .split(';')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let db = match cfg.sqlite_path("acc")? {
            None => None,
            // `kemibox check` does not create the accounting database.
            Some(_) if cfg.check_only => None,
            Some(path) => {
                let c =
                    Connection::open(&path).map_err(|e| format!("acc: {}: {e}", path.display()))?;
                c.execute_batch(SCHEMA).map_err(|e| format!("acc: {e}"))?;
                Some(Mutex::new(c))
            }
        };
        Ok(Acc {
            log_flag: flag(cfg, "log_flag"),
            missed_flag: flag(cfg, "log_missed_flag"),
            failed_flag: flag(cfg, "failed_transaction_flag"),
            db_flag: flag(cfg, "db_flag"),
            db_missed_flag: flag(cfg, "db_missed_flag"),
            log_extra,
            db,
        })
    }

    /// True when a request with these flags is accounted in any way.
    pub fn wants(&self, flags: u32) -> bool {
        [
            self.log_flag,
            self.missed_flag,
            self.db_flag,
            self.db_missed_flag,
        ]
        .iter()
        .any(|f| f.is_some_and(|f| flags & (1 << f) != 0))
    }

    /// Called when a transaction sends its final reply upstream.
    pub fn on_final(&self, req: &Ctx, code: u16, reason: &str, to_tag: &str) {
        let set = |f: Option<u32>| f.is_some_and(|f| req.flags & (1 << f) != 0);
        let failed_ok = code < 300 || set(self.failed_flag);
        let method = req.msg.method_text().to_string();
        let from_tag = req
            .msg
            .value(crate::sip::HdrName::From)
            .and_then(|v| {
                crate::sip::hdr::parse_name_addr(v)
                    .ok()?
                    .tag()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let callid = req.msg.call_id().unwrap_or("").to_string();
        let line = || {
            let mut l = format!(
                "timestamp={};method={method};from_tag={from_tag};to_tag={to_tag};call_id={callid};code={code};reason={reason}",
                crate::modules::usrloc::now()
            );
            for (k, v) in &self.log_extra {
                let val = match pv::get(req, v) {
                    Some(crate::kemi::Val::Str(s)) => s,
                    Some(crate::kemi::Val::Int(i)) => i.to_string(),
                    _ => "n/a".into(),
                };
                l.push_str(&format!(";{k}={val}"));
            }
            l
        };
        if set(self.log_flag) && failed_ok {
            tracing::info!(target: "acc", "ACC: transaction answered: {}", line());
        }
        if set(self.missed_flag) && code >= 300 {
            tracing::info!(target: "acc", "ACC: call missed: {}", line());
        }
        let row = |table: &str| {
            if let Some(db) = &self.db {
                let c = db.lock().unwrap_or_else(|p| p.into_inner());
                // The statement is prepared once per table (rusqlite's statement cache).
                let r = c
                    .prepare_cached(&format!("INSERT INTO {table} (method, from_tag, to_tag, callid, sip_code, sip_reason, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"))
                    .and_then(|mut st| st.execute(rusqlite::params![method, from_tag, to_tag, callid, code.to_string(), reason, crate::store::sqlite::to_datetime(crate::modules::usrloc::now())]));
                if let Err(e) = r {
                    tracing::error!("acc: {e}");
                }
            }
        };
        if set(self.db_flag) && failed_ok {
            row("acc");
        }
        if set(self.db_missed_flag) && code >= 300 {
            row("missed_calls");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::net::Proto;
    use crate::testutil;

    /// DB accounting: an answered call with the db flag set is one `acc` row, a missed one
    /// with the db missed flag one `missed_calls` row, in Kamailio's schema; the same
    /// statement serves every row.
    #[test]
    fn db_accounting_writes_rows() {
        let db = std::env::temp_dir().join(format!("kemibox-acc-{}.sqlite", rand::random::<u32>()));
        let (env, _) = testutil::env(
            &["udp:127.0.0.1:5060"],
            &["acc"],
            &format!(
                "[modparam.acc]\ndb_url = \"sqlite://{}\"\ndb_flag = 1\ndb_missed_flag = 2\n",
                db.display()
            ),
        );
        let mut c = testutil::ctx(
            &env,
            "INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <sip:a@127.0.0.1>;tag=ft\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: acc-1\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            Proto::Udp,
            "127.0.0.1:5060",
        );
        c.flags = (1 << 1) | (1 << 2);
        env.acc.on_final(&c, 200, "OK", "tt1");
        env.acc.on_final(&c, 200, "OK", "tt2");
        env.acc.on_final(&c, 486, "Busy Here", "tt3");
        let conn = rusqlite::Connection::open(&db).expect("db");
        let rows: Vec<(String, String, String)> = conn
            .prepare("SELECT to_tag, sip_code, callid FROM acc ORDER BY id")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                ("tt1".into(), "200".into(), "acc-1".into()),
                ("tt2".into(), "200".into(), "acc-1".into())
            ]
        );
        let missed: (String, String) = conn
            .query_row("SELECT to_tag, sip_reason FROM missed_calls", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("missed row");
        assert_eq!(missed, ("tt3".into(), "Busy Here".into()));
        let _ = std::fs::remove_file(&db);
    }
}
