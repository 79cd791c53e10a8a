//! The KEMI registry: one table of exports (module, name, parameter types, return type,
//! function), built once at start-up from the loaded modules. Every engine (mlua today,
//! wasm later) calls these same functions, by index.

mod ctx;

pub use ctx::{Ctx, Env, RecvInfo, RouteKind, SendInfo, TmPending};

use std::collections::HashMap;

use thiserror::Error;

/// A KEMI value: Kamailio's `sr_kemi_xval_t` (none / int / str) plus `bool`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
}

impl Val {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Self {
        Val::Int(v as i64)
    }
}

impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::Bool(v)
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Str(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Str(v.to_string())
    }
}

impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        v.map(Val::Str).unwrap_or(Val::None)
    }
}

/// Kamailio's int convention as a value: >0 true, <0 false.
pub fn ret_bool(ok: bool) -> Result<Val, KemiError> {
    Ok(Val::Int(if ok { 1 } else { -1 }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PType {
    Int,
    Str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RType {
    None,
    Int,
    Bool,
    XVal,
}

/// Why a KEMI call did not return a value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KemiError {
    /// `KSR.x.exit()`: stop the routing script from any call depth.
    #[error("exit")]
    Exit,
    /// `KSR.x.drop()`: stop the routing script and drop the message.
    #[error("drop")]
    Drop,
    #[error("bad arguments to {0}: {1}")]
    Args(String, String),
}

pub type KemiFn = fn(&mut Ctx, &[Val]) -> Result<Val, KemiError>;

/// One exported function.
#[derive(Clone, Copy)]
pub struct Export {
    /// Module name; `""` for the core functions reached as `KSR.<name>`.
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [PType],
    pub ret: RType,
    pub func: KemiFn,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}{:?}->{:?}",
            self.module, self.name, self.params, self.ret
        )
    }
}

/// Shorthand for export tables.
#[macro_export]
macro_rules! export {
    ($m:expr, $n:expr, [$($p:ident),*], $r:ident, $f:expr) => {
        $crate::kemi::Export {
            module: $m,
            name: $n,
            params: &[$($crate::kemi::PType::$p),*],
            ret: $crate::kemi::RType::$r,
            func: $f,
        }
    };
}

/// The table of exports of the loaded modules.
#[derive(Debug, Default)]
pub struct Registry {
    exports: Vec<Export>,
    by_name: HashMap<(&'static str, &'static str), usize>,
    modules: Vec<&'static str>,
}

impl Registry {
    /// Builds the registry from the modules named in `load` (the core, `pv` and `x`
    /// modules are always present, as in Kamailio).
    pub fn build(load: &[String]) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
        let mut names: Vec<&str> = vec!["", "pv", "x", "hdr"];
        for m in load {
            if !crate::modules::AVAILABLE.contains(&m.as_str()) {
                return Err(RegistryError::UnknownModule(m.clone()));
            }
            if !names.contains(&m.as_str()) {
                names.push(m);
            }
        }
        for name in names {
            for e in crate::modules::exports_of(name) {
                reg.add(e)?;
            }
        }
        Ok(reg)
    }

    fn add(&mut self, e: Export) -> Result<(), RegistryError> {
        if self.by_name.contains_key(&(e.module, e.name)) {
            return Err(RegistryError::Duplicate(e.module, e.name));
        }
        if !self.modules.contains(&e.module) {
            self.modules.push(e.module);
        }
        self.by_name.insert((e.module, e.name), self.exports.len());
        self.exports.push(e);
        Ok(())
    }

    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    pub fn modules(&self) -> &[&'static str] {
        &self.modules
    }

    pub fn index_of(&self, module: &str, name: &str) -> Option<usize> {
        self.exports
            .iter()
            .position(|e| e.module == module && e.name == name)
    }

    pub fn has_module(&self, module: &str) -> bool {
        self.modules.contains(&module)
    }

    /// Calls export `idx` after checking the argument count and types.
    pub fn call(&self, idx: usize, ctx: &mut Ctx, args: &[Val]) -> Result<Val, KemiError> {
        let e = self
            .exports
            .get(idx)
            .ok_or_else(|| KemiError::Args(format!("#{idx}"), "no such export".into()))?;
        if args.len() != e.params.len() {
            return Err(KemiError::Args(
                full_name(e),
                format!("expected {} arguments, got {}", e.params.len(), args.len()),
            ));
        }
        for (i, (p, a)) in e.params.iter().zip(args).enumerate() {
            let ok = matches!(
                (p, a),
                (PType::Int, Val::Int(_)) | (PType::Str, Val::Str(_))
            );
            if !ok {
                return Err(KemiError::Args(
                    full_name(e),
                    format!("argument {} must be {:?}", i + 1, p),
                ));
            }
        }
        (e.func)(ctx, args)
    }
}

pub fn full_name(e: &Export) -> String {
    if e.module.is_empty() {
        format!("KSR.{}", e.name)
    } else {
        format!("KSR.{}.{}", e.module, e.name)
    }
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("unknown module `{0}`")]
    UnknownModule(String),
    #[error("export {0}.{1} registered twice")]
    Duplicate(&'static str, &'static str),
}

/// Argument accessors for export functions; the registry has checked the types already.
pub fn s(args: &[Val], i: usize) -> &str {
    match args.get(i) {
        Some(Val::Str(s)) => s,
        _ => "",
    }
}

pub fn n(args: &[Val], i: usize) -> i64 {
    match args.get(i) {
        Some(Val::Int(v)) => *v,
        _ => 0,
    }
}
