//! For runtimes that run a script in another language (`plugins/lua`, `plugins/quickjs`):
//! the script's functions are the routes, and a route that fails traps the instance, so
//! kemibox answers 500, counts the error and gives the worker a fresh instance.

/// A script runtime: loads the script given as the plugin's config, runs its routes.
pub trait ScriptRuntime {
    /// Loads the script (`config` is what kemibox passes: `@<path>` on the first line,
    /// then the source); an `Err` refuses it with the reason.
    fn init(config: &str) -> Result<(), String>;

    /// Runs the script's route function `name`: `Ok(false)` when the script has none;
    /// `Err` with the text to log (ending with a newline) when it failed.
    fn run(name: &str) -> Result<bool, String>;
}

/// Runs route `name` of `R`; a failure is logged through `KSR.err` and traps.
#[doc(hidden)]
pub fn run_route<R: ScriptRuntime>(name: &str) -> bool {
    match R::run(name) {
        Ok(found) => found,
        Err(text) => {
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
            struct KemiboxExport;
            impl $crate::bindings::Guest for KemiboxExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    <$t as $crate::script::ScriptRuntime>::init(&config)
                }
                fn request_route() {
                    $crate::script::run_route::<$t>("ksr_request_route");
                }
                fn reply_route() {
                    $crate::script::run_route::<$t>("ksr_reply_route");
                }
                fn route(name: ::std::string::String) -> bool {
                    $crate::script::run_route::<$t>(&name)
                }
                fn onsend_route() -> bool {
                    $crate::script::run_route::<$t>("ksr_onsend_route")
                }
            }
    $crate::bindings::export!(KemiboxExport with_types_in $crate::bindings);
        };
    };
}
