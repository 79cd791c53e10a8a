//! `KSR.auth_db`: digest credentials checked against Kamailio's `subscriber` table
//! (username, domain, password, ha1, ha1b) in SQLite (`db_url = "sqlite://..."`).

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};

use crate::config::Config;
use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::sip::{HdrName, Method, Uri};

use super::auth::{credentials, expected_response, Algorithm, NonceCheck};

type R = Result<Val, KemiError>;

/// The subscriber database.
pub struct Subscribers {
    conn: Option<Mutex<Connection>>,
    calculate_ha1: bool,
    password_column: String,
    use_domain: bool,
}

/// A subscriber row, as much as authentication needs.
struct Row {
    password: String,
    ha1: String,
    ha1b: String,
}

impl Subscribers {
    pub fn from_config(cfg: &Config) -> Result<Subscribers, String> {
        let conn = match cfg.sqlite_path("auth_db")? {
            None => None,
            Some(path) => {
                let c = Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| format!("auth_db: {}: {e}", path.display()))?;
                Some(Mutex::new(c))
            }
        };
        let password_column = cfg
            .modparam_str("auth_db", "password_column", "ha1")
            .to_string();
        if !password_column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("auth_db: bad password_column `{password_column}`"));
        }
        Ok(Subscribers {
            conn,
            calculate_ha1: cfg.modparam_int("auth_db", "calculate_ha1", 0) != 0,
            password_column,
            use_domain: cfg.modparam_int("auth_db", "use_domain", 0) != 0,
        })
    }

    fn lookup(&self, table: &str, user: &str, domain: &str) -> Result<Option<Row>, String> {
        let Some(conn) = &self.conn else {
            return Err("auth_db: no db_url".into());
        };
        if !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("bad table `{table}`"));
        }
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let pw = if self.calculate_ha1 {
            self.password_column.as_str()
        } else {
            "''"
        };
        let (sql, domain_arg) = if self.use_domain {
            (
                format!("SELECT {pw}, ha1, ha1b FROM {table} WHERE username = ?1 AND domain = ?2"),
                Some(domain),
            )
        } else {
            (
                format!("SELECT {pw}, ha1, ha1b FROM {table} WHERE username = ?1"),
                None,
            )
        };
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Row {
                password: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                ha1: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ha1b: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        };
        // A prepared statement is kept per SQL text (rusqlite's statement cache): parsing
        // and planning the query cost more than running it, on every authenticated request.
        let mut st = conn
            .prepare_cached(&sql)
            .map_err(|e| format!("auth_db: {e}"))?;
        let row = match domain_arg {
            Some(d) => st.query_row(rusqlite::params![user, d], map).optional(),
            None => st.query_row(rusqlite::params![user], map).optional(),
        };
        row.map_err(|e| format!("auth_db: {e}"))
    }
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("auth_db", "auth_check", [Str, Str, Int], Int, |c, a| {
            let (realm, table) = (s(a, 0).to_string(), s(a, 1).to_string());
            Ok(Val::Int(auth_check(c, &realm, &table, n(a, 2))))
        }),
        export!("auth_db", "www_authenticate", [Str, Str], Int, |c, a| {
            let (realm, table) = (s(a, 0).to_string(), s(a, 1).to_string());
            Ok(Val::Int(auth_check(c, &realm, &table, 0)))
        }),
        export!("auth_db", "proxy_authenticate", [Str, Str], Int, |c, a| {
            let (realm, table) = (s(a, 0).to_string(), s(a, 1).to_string());
            Ok(Val::Int(auth_check(c, &realm, &table, 0)))
        }),
        export!(
            "auth_db",
            "is_subscriber",
            [Str, Str, Int],
            Int,
            is_subscriber
        ),
    ]
}

fn user_of(c: &Ctx, name: HdrName) -> Option<(String, String)> {
    let u = Uri::parse(c.hdr_uri(name)?).ok()?;
    Some((
        u.user.unwrap_or("").to_string(),
        u.host.to_ascii_lowercase(),
    ))
}

/// Kamailio's auth_check codes: 1 ok, -1 error, -2 wrong password, -3 unknown user,
/// -4 stale nonce, -5 no credentials, -6 nonce reused, -8 user mismatch.
pub fn auth_check(c: &mut Ctx, realm: &str, table: &str, flags: i64) -> i64 {
    if matches!(c.msg.method(), Some(Method::Ack | Method::Cancel)) {
        return 1;
    }
    let cr = match credentials(c, realm) {
        None => return -5,
        Some(Err(())) => return -1,
        Some(Ok(cr)) => cr,
    };
    let Some(alg) = cr.algorithm else { return -1 };
    if flags & 1 != 0 {
        let reg = matches!(c.msg.method(), Some(Method::Register | Method::Publish));
        let skip = flags & 2 != 0
            && matches!(
                c.msg.method(),
                Some(
                    Method::Invite | Method::Bye | Method::Prack | Method::Update | Method::Message
                )
            );
        if !skip {
            let from = user_of(c, HdrName::From);
            let id = if reg {
                user_of(c, HdrName::To)
            } else {
                from.clone()
            };
            let digest_user = cr.username.split('@').next().unwrap_or("");
            let matches = id.as_ref().is_some_and(|(u, _)| u == digest_user)
                && (!reg || from.as_ref().map(|f| &f.0) == id.as_ref().map(|t| &t.0));
            if !matches {
                return -8;
            }
        }
    }
    let env = c.env.clone();
    let (user, domain) = match cr.username.split_once('@') {
        Some((u, d)) => (u.to_string(), d.to_string()),
        None => (cr.username.clone(), realm.to_string()),
    };
    let row = match env.subscribers.lookup(table, &user, &domain) {
        Ok(Some(r)) => r,
        Ok(None) => return -3,
        Err(e) => {
            tracing::error!("{e}");
            return -1;
        }
    };
    let ha1 = if env.subscribers.calculate_ha1 {
        alg.hash(&format!("{}:{}:{}", cr.username, realm, row.password))
    } else if cr.username.contains('@') {
        row.ha1b
    } else {
        row.ha1
    };
    if alg == Algorithm::Sha256 && !env.subscribers.calculate_ha1 {
        // Stored ha1 columns hold MD5 hashes.
        return -1;
    }
    let expected = expected_response(&cr, alg, &ha1, c.msg.method_text());
    if !expected.eq_ignore_ascii_case(&cr.response) {
        return -2;
    }
    let nc = if cr.qop.is_some() {
        cr.nc.as_deref()
    } else {
        None
    };
    match env.nonces.check(&cr.nonce, nc) {
        NonceCheck::Ok => {}
        NonceCheck::Stale => return -4,
        NonceCheck::Forged => return -1,
        NonceCheck::Replayed => return -6,
    }
    c.auth_header = Some(cr.header);
    c.auth_user = Some(user);
    1
}

fn is_subscriber(c: &mut Ctx, a: &[Val]) -> R {
    let Ok(u) = Uri::parse(s(a, 0)) else {
        return Ok(Val::Int(-1));
    };
    let domain = if n(a, 2) & 1 != 0 { u.host } else { "" };
    Ok(Val::Int(
        match c
            .env
            .subscribers
            .lookup(s(a, 1), u.user.unwrap_or(""), domain)
        {
            Ok(Some(_)) => 1,
            Ok(None) => -1,
            Err(e) => {
                tracing::error!("{e}");
                -2
            }
        },
    ))
}
