//! `KSR.auth`: HTTP digest authentication (RFC 2617, MD5 and RFC 7616/8760 SHA-256):
//! challenges with integrity-protected, expiring nonces; credential checks; consuming
//! credentials. `auth_db` looks the users up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::config::Config;
use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::sip::hdr::parse_auth;
use crate::sip::{HdrName, Method, Span};

type R = Result<Val, KemiError>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "" | "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    pub fn hash(self, text: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => Md5::digest(text.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(text.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Nonces: `expiry (16 hex) | random (16 hex) | HMAC-SHA256(secret, both) (32 hex)`.
/// A nonce we did not make fails the MAC; an old one is stale; with qop the nonce count
/// must grow (no replay).
pub struct Nonces {
    secret: Vec<u8>,
    pub expire: u64,
    /// Highest nc seen per nonce (pruned as nonces expire).
    seen: Mutex<HashMap<String, (u64, u32)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Ok,
    Stale,
    Forged,
    Replayed,
}

impl Nonces {
    pub fn from_config(cfg: &Config) -> Nonces {
        let secret = match cfg.modparam_str("auth", "secret", "") {
            "" => (0..32).map(|_| rand::random::<u8>()).collect(),
            s => s.as_bytes().to_vec(),
        };
        Nonces {
            secret,
            expire: cfg.modparam_int("auth", "nonce_expire", 300).max(1) as u64,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, body: &str) -> String {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).unwrap_or_else(|_| {
            <Hmac<Sha256> as KeyInit>::new_from_slice(b"kemibox").expect("static key")
        });
        m.update(body.as_bytes());
        m.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn make(&self) -> String {
        let body = format!("{:016x}{:016x}", now() + self.expire, rand::random::<u64>());
        let mac = self.mac(&body);
        format!("{body}{mac}")
    }

    /// Checks a nonce and, with qop, its nonce count.
    pub fn check(&self, nonce: &str, nc: Option<&str>) -> NonceCheck {
        if nonce.len() != 64 || !nonce.is_char_boundary(32) {
            return NonceCheck::Forged;
        }
        let (body, mac) = nonce.split_at(32);
        if self.mac(body) != mac {
            return NonceCheck::Forged;
        }
        let Ok(expiry) = u64::from_str_radix(&body[..16], 16) else {
            return NonceCheck::Forged;
        };
        let now = now();
        if expiry < now {
            return NonceCheck::Stale;
        }
        if let Some(nc) = nc {
            let Ok(nc) = u32::from_str_radix(nc, 16) else {
                return NonceCheck::Replayed;
            };
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() > 100_000 {
                seen.retain(|_, (exp, _)| *exp >= now);
            }
            let last = seen.entry(nonce.to_string()).or_insert((expiry, 0));
            if nc <= last.1 {
                return NonceCheck::Replayed;
            }
            last.1 = nc;
        }
        NonceCheck::Ok
    }
}

/// Parsed digest credentials of one header.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub header: Span,
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<Algorithm>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

/// The credentials for `realm` (REGISTER: Authorization; others: Proxy-Authorization).
pub fn credentials(c: &Ctx, realm: &str) -> Option<Result<Credentials, ()>> {
    let name = if c.msg.method() == Some(Method::Register) {
        HdrName::Authorization
    } else {
        HdrName::ProxyAuthorization
    };
    for h in c.msg.headers_named(name) {
        let Ok(a) = parse_auth(c.msg.text(h.value)) else {
            return Some(Err(()));
        };
        if !a.scheme.eq_ignore_ascii_case("digest") || a.get("realm") != Some(realm) {
            continue;
        }
        let get = |k: &str| a.get(k).map(str::to_string);
        let (Some(username), Some(nonce), Some(uri), Some(response)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return Some(Err(()));
        };
        let algorithm = match a.get("algorithm") {
            None => Some(Algorithm::Md5),
            Some(x) => Algorithm::parse(x),
        };
        return Some(Ok(Credentials {
            header: h.line,
            username,
            realm: realm.to_string(),
            nonce,
            uri,
            response,
            algorithm,
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
        }));
    }
    None
}

/// The expected digest response for credentials given HA1 (RFC 2617 §3.2.2.1).
pub fn expected_response(cr: &Credentials, alg: Algorithm, ha1: &str, method: &str) -> String {
    let ha2 = alg.hash(&format!("{method}:{}", cr.uri));
    match (&cr.qop, &cr.nc, &cr.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", cr.nonce))
        }
        _ => alg.hash(&format!("{ha1}:{}:{ha2}", cr.nonce)),
    }
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("auth", "auth_challenge", [Str, Int], Int, |c, a| challenge(
            c,
            s(a, 0),
            n(a, 1)
        )),
        export!("auth", "www_challenge", [Str, Int], Int, |c, a| challenge(
            c,
            s(a, 0),
            n(a, 1)
        )),
        export!(
            "auth",
            "proxy_challenge",
            [Str, Int],
            Int,
            |c, a| challenge(c, s(a, 0), n(a, 1))
        ),
        export!("auth", "consume_credentials", [], Int, |c, _| {
            if matches!(
                c.msg.method(),
                Some(Method::Ack | Method::Cancel | Method::Prack)
            ) {
                return Ok(Val::Int(-1));
            }
            match c.auth_header.take() {
                Some(span) => {
                    c.lumps.delete(span);
                    Ok(Val::Int(1))
                }
                None => Ok(Val::Int(-1)),
            }
        }),
        export!("auth", "has_credentials", [Str], Int, |c, a| {
            let realm = s(a, 0);
            let found = [HdrName::Authorization, HdrName::ProxyAuthorization]
                .iter()
                .any(|n| {
                    c.msg.headers_named(*n).any(|h| {
                        parse_auth(c.msg.text(h.value))
                            .ok()
                            .and_then(|x| x.get("realm").map(|r| r == realm))
                            .unwrap_or(false)
                    })
                });
            Ok(Val::Int(if found { 1 } else { -1 }))
        }),
    ]
}

/// 401 with WWW-Authenticate for REGISTER, 407 with Proxy-Authenticate otherwise.
fn challenge(c: &mut Ctx, realm: &str, flags: i64) -> R {
    let env = c.env.clone();
    let nonce = env.nonces.make();
    let mut h = format!("Digest realm=\"{realm}\", nonce=\"{nonce}\"");
    match (flags & 1 != 0, flags & 2 != 0) {
        (true, true) => h.push_str(", qop=\"auth,auth-int\""),
        (true, false) => h.push_str(", qop=\"auth\""),
        (false, true) => h.push_str(", qop=\"auth-int\""),
        _ => {}
    }
    if flags & 16 != 0 {
        h.push_str(", stale=true");
    }
    match env.cfg.modparam_str("auth", "algorithm", "") {
        "" => {}
        alg => h.push_str(&format!(", algorithm={alg}")),
    }
    let (code, reason, name) = if c.msg.method() == Some(Method::Register) {
        (401, "Unauthorized", "WWW-Authenticate")
    } else {
        (407, "Proxy Authentication Required", "Proxy-Authenticate")
    };
    c.reply_lumps.push(format!("{name}: {h}\r\n"));
    let sent = if c.txn.is_some() {
        super::tm::t_reply(c, code, reason) > 0
    } else {
        crate::proxy::reply::send_reply(c, code, reason).is_ok()
    };
    Ok(Val::Int(if sent { 1 } else { -3 }))
}
