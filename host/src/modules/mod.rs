//! KEMI modules. Each exports its functions into the registry and nothing else knows its
//! internals. Names, parameters and return codes are Kamailio's.

use crate::config::ParamKind;
use crate::kemi::Export;

pub mod acc;
pub mod auth;
pub mod auth_db;
pub mod corex;
pub mod hdr;
pub mod htable;
pub mod kx;
pub mod maxfwd;
pub mod nathelper;
pub mod permissions;
pub mod pike;
pub mod pv;
pub mod registrar;
pub mod rr;
pub mod sanity;
pub mod siputils;
pub mod sl;
pub mod textops;
pub mod tm;
pub mod usrloc;
pub mod x;
pub mod xlog;

mod core;

/// Modules that can be named in `[core] modules` (the core, `pv`, `hdr` and `x` are
/// always loaded).
pub const AVAILABLE: &[&str] = &[
    "sl",
    "maxfwd",
    "sanity",
    "siputils",
    "kx",
    "corex",
    "textops",
    "registrar",
    "usrloc",
    "tm",
    "tmx",
    "auth",
    "auth_db",
    "htable",
    "pike",
    "acc",
    "rr",
    "nathelper",
    "permissions",
    "xlog",
];

/// The exports of one module (`""` is the core).
pub fn exports_of(module: &str) -> Vec<Export> {
    match module {
        "" => core::exports(),
        "x" => x::exports(),
        "pv" => pv::exports(),
        "hdr" => hdr::exports(),
        "sl" => sl::exports(),
        "maxfwd" => maxfwd::exports(),
        "sanity" => sanity::exports(),
        "siputils" => siputils::exports(),
        "kx" => kx::exports(),
        "corex" => corex::exports(),
        "textops" => textops::exports(),
        "registrar" => registrar::exports(),
        "tm" => tm::exports(),
        "auth" => auth::exports(),
        "htable" => htable::exports(),
        "nathelper" => nathelper::exports(),
        "permissions" => permissions::exports(),
        "pike" => pike::exports(),
        "auth_db" => auth_db::exports(),
        "tmx" => tm::tmx_exports(),
        "rr" => rr::exports(),
        "xlog" => xlog::exports(),
        _ => Vec::new(),
    }
}

/// The modparams a module accepts, with their types.
pub fn modparams_of(module: &str) -> Option<&'static [(&'static str, ParamKind)]> {
    Some(match module {
        "maxfwd" => &[("max_limit", ParamKind::Int)],
        "sanity" => &[
            ("default_checks", ParamKind::Int),
            ("uri_checks", ParamKind::Int),
            ("proxy_require", ParamKind::Str),
            ("autodrop", ParamKind::Int),
            ("noreply", ParamKind::Int),
        ],
        "siputils" => &[
            ("options_accept", ParamKind::Str),
            ("options_accept_encoding", ParamKind::Str),
            ("options_accept_language", ParamKind::Str),
            ("options_support", ParamKind::Str),
        ],
        "sl" => &[("bind_tm", ParamKind::Int)],
        "registrar" => &[
            ("default_expires", ParamKind::Int),
            ("min_expires", ParamKind::Int),
            ("max_expires", ParamKind::Int),
            ("max_contacts", ParamKind::Int),
            ("method_filtering", ParamKind::Int),
            ("min_expires_mode", ParamKind::Int),
        ],
        "usrloc" => &[
            ("db_url", ParamKind::Str),
            ("db_mode", ParamKind::Int),
            ("preload", ParamKind::Str),
            ("use_domain", ParamKind::Int),
            ("timer_interval", ParamKind::Int),
        ],
        "rr" => &[
            ("enable_full_lr", ParamKind::Int),
            ("append_fromtag", ParamKind::Int),
            ("enable_double_rr", ParamKind::Int),
            ("add_username", ParamKind::Int),
        ],
        "tm" => &[
            ("fr_timer", ParamKind::Int),
            ("fr_inv_timer", ParamKind::Int),
            ("wt_timer", ParamKind::Int),
            ("retr_timer1", ParamKind::Int),
            ("retr_timer2", ParamKind::Int),
            ("auto_inv_100", ParamKind::Int),
        ],
        "auth" => &[
            ("secret", ParamKind::Str),
            ("nonce_expire", ParamKind::Int),
            ("algorithm", ParamKind::Str),
        ],
        "auth_db" => &[
            ("db_url", ParamKind::Str),
            ("calculate_ha1", ParamKind::Int),
            ("password_column", ParamKind::Str),
            ("use_domain", ParamKind::Int),
        ],
        "htable" => &[("htable", ParamKind::StrList)],
        "nathelper" => &[
            ("received_avp", ParamKind::Str),
            ("natping_interval", ParamKind::Int),
            ("sipping_bflag", ParamKind::Int),
        ],
        "permissions" => &[
            ("db_url", ParamKind::Str),
            ("db_mode", ParamKind::Int),
            ("address_table", ParamKind::Str),
        ],
        "acc" => &[
            ("log_flag", ParamKind::Int),
            ("log_missed_flag", ParamKind::Int),
            ("failed_transaction_flag", ParamKind::Int),
            ("db_flag", ParamKind::Int),
            ("db_missed_flag", ParamKind::Int),
            ("log_extra", ParamKind::Str),
            ("db_url", ParamKind::Str),
            ("early_media", ParamKind::Int),
            ("report_ack", ParamKind::Int),
            ("report_cancels", ParamKind::Int),
            ("detect_direction", ParamKind::Int),
        ],
        "pike" => &[
            ("sampling_time_unit", ParamKind::Int),
            ("reqs_density_per_unit", ParamKind::Int),
            ("remove_latency", ParamKind::Int),
        ],
        "kx" | "corex" | "textops" | "tmx" => &[],
        _ => return None,
    })
}
