//! `KSR.permissions`: source address checks against Kamailio's `address` table
//! (grp, ip_addr, mask, port, tag) loaded from SQLite at start-up.

use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::Connection;

use crate::config::Config;
use crate::export;
use crate::kemi::{n, s, Export, Val};

struct Entry {
    grp: i64,
    net: IpNet,
    port: u16,
    tag: Option<String>,
}

#[derive(Default)]
pub struct Permissions {
    entries: Vec<Entry>,
}

impl Permissions {
    pub fn from_config(cfg: &Config) -> Result<Permissions, String> {
        let Some(path) = cfg.sqlite_path("permissions")? else {
            return Ok(Permissions::default());
        };
        // Read only: a missing file is an error, never an empty new database.
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("permissions: {}: {e}", path.display()))?;
        let table = cfg.modparam_str("permissions", "address_table", "address");
        if !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("permissions: bad address_table `{table}`"));
        }
        let mut st = conn
            .prepare(&format!(
                "SELECT grp, ip_addr, mask, port, tag FROM {table}"
            ))
            .map_err(|e| format!("permissions: {e}"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| format!("permissions: {e}"))?;
        let mut entries = Vec::new();
        for row in rows {
            let (grp, ip, mask, port, tag) = row.map_err(|e| format!("permissions: {e}"))?;
            let addr: IpAddr = ip
                .parse()
                .map_err(|_| format!("permissions: bad ip_addr `{ip}`"))?;
            let net = IpNet::new(addr, mask.clamp(0, 128) as u8)
                .map_err(|_| format!("permissions: bad mask {mask} for {ip}"))?;
            entries.push(Entry {
                grp,
                net,
                port: port.clamp(0, 65535) as u16,
                tag,
            });
        }
        Ok(Permissions { entries })
    }

    /// The tag of the first entry of `grp` matching `ip`/`port` (port 0 = any).
    fn matches(&self, grp: i64, ip: IpAddr, port: u16) -> Option<Option<&str>> {
        self.entries
            .iter()
            .find(|e| e.grp == grp && e.net.contains(&ip) && (e.port == 0 || e.port == port))
            .map(|e| e.tag.as_deref())
    }
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("permissions", "allow_source_address", [Int], Int, |c, a| {
            let ok = c
                .env
                .permissions
                .matches(n(a, 0), c.rcv.src.ip(), c.rcv.src.port())
                .is_some();
            Ok(Val::Int(if ok { 1 } else { -1 }))
        }),
        export!(
            "permissions",
            "allow_address",
            [Int, Str, Int],
            Int,
            |c, a| {
                let Ok(ip) = s(a, 1).parse::<IpAddr>() else {
                    return Ok(Val::Int(-1));
                };
                let ok = c
                    .env
                    .permissions
                    .matches(n(a, 0), ip, n(a, 2).clamp(0, 65535) as u16)
                    .is_some();
                Ok(Val::Int(if ok { 1 } else { -1 }))
            }
        ),
        export!(
            "permissions",
            "allow_source_address_group",
            [],
            Int,
            |c, _| {
                let src = c.rcv.src;
                let grp = c
                    .env
                    .permissions
                    .entries
                    .iter()
                    .find(|e| e.net.contains(&src.ip()) && (e.port == 0 || e.port == src.port()))
                    .map(|e| e.grp);
                Ok(Val::Int(grp.unwrap_or(-1)))
            }
        ),
    ]
}
