//! For runtimes that run a script in another language (`plugins/lua`, `plugins/quickjs`):
//! the script's functions are the routes, and a route that fails traps the instance, so
//! kemibox answers 500, counts the error and gives the worker a fresh instance.

use crate::bindings::kemibox::kemi::kemi::{ExportInfo, ParamType, ReturnType};

/// A script runtime: the state of one loaded script (an interpreter with the script in
/// it), kept by the instance from `init` on.
pub trait ScriptRuntime: Sized + 'static {
    /// Loads the script (`config` is what kemibox passes: `@<path>` on the first line,
    /// then the source); an `Err` refuses it with the reason.
    fn new(config: &str) -> Result<Self, String>;

    /// Runs the script's route function `name`: `Ok(false)` when the script has none;
    /// `Err` with what went wrong.
    fn run(&mut self, name: &str) -> Result<bool, String>;

    /// The log text of route `name` failing with `err`, ending with a newline.
    fn failure_text(name: &str, err: &str) -> String;
}

/// What a runtime's KSR function of one export checks and converts: the export's full
/// name (for error messages), parameter types and return convention.
pub struct Sig {
    pub name: String,
    pub params: Vec<ParamType>,
    pub ret: ReturnType,
}

static SIGS: std::sync::OnceLock<Vec<Sig>> = std::sync::OnceLock::new();

/// `KSR.<name>` or `KSR.<module>.<name>`.
pub fn full_name(e: &ExportInfo) -> String {
    if e.module.is_empty() {
        format!("KSR.{}", e.name)
    } else {
        format!("KSR.{}.{}", e.module, e.name)
    }
}

/// Keeps the signature of every export (by index) for [`signature`]; set once at `init`
/// (a second `init` in one instance does not happen: the first list stands).
pub fn set_signatures(exports: &[ExportInfo]) {
    let _ = SIGS.set(
        exports
            .iter()
            .map(|e| Sig {
                name: full_name(e),
                params: e.params.clone(),
                ret: e.ret,
            })
            .collect(),
    );
}

/// The export index (as a KSR function carries it) and its signature.
pub fn signature(index: i64) -> Option<(u32, &'static Sig)> {
    let i = u32::try_from(index).ok()?;
    SIGS.get()?.get(i as usize).map(|s| (i, s))
}

/// Where an instance keeps its runtime (a thread-local made by [`script_runtime!`]).
#[doc(hidden)]
pub type Slot<R> = std::thread::LocalKey<std::cell::RefCell<Option<R>>>;

/// `init`: loads the script into `slot`.
#[doc(hidden)]
pub fn init<R: ScriptRuntime>(slot: &'static Slot<R>, config: &str) -> Result<(), String> {
    let rt = R::new(config)?;
    slot.with(|s| *s.borrow_mut() = Some(rt));
    Ok(())
}

/// Runs route `name` of the runtime in `slot`; a failure is logged through `KSR.err` and
/// traps.
#[doc(hidden)]
pub fn run_route<R: ScriptRuntime>(slot: &'static Slot<R>, name: &str) -> bool {
    let r = slot.with(|s| match s.borrow_mut().as_mut() {
        Some(rt) => rt.run(name),
        None => Err("the script runtime was not initialised".to_string()),
    });
    match r {
        Ok(found) => found,
        Err(e) => {
            let text = R::failure_text(name, &e);
            if crate::bindings::kemibox::kemi::core::err(&text).is_err() {
                eprint!("{text}");
            }
            trap()
        }
    }
}

/// Ends the instance: the route call fails and kemibox replaces the instance.
pub fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort()
}

/// Exports a type implementing [`ScriptRuntime`] as the component's routes: the request
/// and reply routes are the script's `ksr_request_route` and `ksr_reply_route`, the onsend
/// route `ksr_onsend_route` (absent: kemibox stops calling it), other routes by name.
#[macro_export]
macro_rules! script_runtime {
    ($t:ty) => {
        const _: () = {
            ::std::thread_local! {
                static RT: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct KemiboxExport;
            impl $crate::bindings::Guest for KemiboxExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::script::init::<$t>(&RT, &config)
                }
                fn request_route() {
                    $crate::script::run_route::<$t>(&RT, "ksr_request_route");
                }
                fn reply_route() {
                    $crate::script::run_route::<$t>(&RT, "ksr_reply_route");
                }
                fn route(name: ::std::string::String) -> bool {
                    $crate::script::run_route::<$t>(&RT, &name)
                }
                fn onsend_route() -> bool {
                    $crate::script::run_route::<$t>(&RT, "ksr_onsend_route")
                }
            }
    $crate::bindings::export!(KemiboxExport with_types_in $crate::bindings);
        };
    };
}
