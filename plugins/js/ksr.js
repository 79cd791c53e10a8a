// kemibox JavaScript runtime: the `KSR` object of Kamailio's app_jsdt, built at run time
// from the generic indexed interface `kemi` of wit/kemi.wit, around a routing script.
//
// `kemibox plugin build script.js -o out.wasm` replaces the two placeholders below (the
// script's text and file name, as JSON strings) and hands this module to componentize-js.
// The script is evaluated at build time (componentize-js snapshots the engine after the
// top level ran), as a classic global script in sloppy mode, the way app_jsdt evaluates
// it: its functions are globals that routes are looked up by name. `KSR` exists then,
// but is only filled by `init` (imports cannot be called while building), so a script's
// top level may define things but not call `KSR`.

import { exports as kemiExports, call as kemiCall } from 'kemibox:kemi/kemi@0.1.0';

const SCRIPT_SOURCE = __KEMIBOX_SCRIPT_SOURCE__;
const SCRIPT_NAME = __KEMIBOX_SCRIPT_NAME__;

// app_jsdt's exit sentinel: `KSR.x.exit()` throws it; a route that ends with it ran fine.
const EXIT = '~~ksr~exit~~';
// SR_KEMI_PARAMS_MAX
const PARAMS_MAX = 6;
const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

const KSR = {};
globalThis.KSR = KSR;

// Registry indexes of the log functions the shim itself uses (found by `init`).
let errIndex = -1;

function exitSignal(e) {
  return e === EXIT;
}

// duk_to_int: ToNumber, NaN -> 0, then truncated and clamped to a C int.
function toInt(v) {
  const n = Number(v);
  if (n !== n) return 0;
  if (n <= INT_MIN) return INT_MIN;
  if (n >= INT_MAX) return INT_MAX;
  return Math.trunc(n);
}

function logError(text) {
  if (errIndex < 0) return;
  try {
    kemiCall(errIndex, [{ tag: 'str', val: text }]);
  } catch (_) {
    // Outside a route (init): nothing to log to.
  }
}

// A call that ended with a call-error: exit/drop end the route (the host already marked
// a drop), a bad-args is logged and answers false, as app_jsdt does for bad parameters.
function callFailed(e, full) {
  const p = e !== null && typeof e === 'object' ? e.payload : undefined;
  if (p !== undefined && p !== null) {
    if (p.tag === 'exit' || p.tag === 'drop') throw EXIT;
    if (p.tag === 'bad-args') {
      logError(`${full}: ${p.val}\n`);
      return false;
    }
  }
  throw e;
}

// The result of a KEMI call as app_jsdt returns it (sr_kemi_jsdt_return_xval).
function fromValue(v, ret) {
  switch (v.tag) {
    case 'none':
      return ret === 'xval' ? null : ret === 'bool' ? false : undefined;
    case 'bool':
      return ret === 'int' ? (v.val ? 1 : -1) : v.val;
    case 'int':
      return ret === 'bool' ? v.val > 0n : Number(v.val);
    case 'str':
      return ret === 'bool' ? true : v.val;
    default:
      return undefined;
  }
}

function kemiFunction(index, info) {
  const full = info.module ? `KSR.${info.module}.${info.name}` : `KSR.${info.name}`;
  const types = info.params;
  const n = types.length;
  const ret = info.ret;
  return function () {
    const argc = arguments.length;
    if (argc === 0 && n > 0) {
      logError(`invalid number of parameters for: ${full}\n`);
      return false;
    }
    if (argc > PARAMS_MAX) {
      logError(`too many parameters for: ${full}\n`);
      return false;
    }
    if (argc < n) {
      // duk_to_string/duk_to_int on a missing argument
      throw new RangeError(`invalid stack index ${argc} (${full} takes ${n} parameters)`);
    }
    const args = new Array(n);
    for (let i = 0; i < n; i++) {
      const a = arguments[i];
      args[i] =
        types[i] === 'int'
          ? { tag: 'int', val: BigInt(toInt(a)) }
          : { tag: 'str', val: String(a) };
    }
    let r;
    try {
      r = kemiCall(index, args);
    } catch (e) {
      return callFailed(e, full);
    }
    return fromValue(r, ret);
  };
}

// Builds KSR.<name> and KSR.<module>.<name> (and app_jsdt's KSR_<module> aliases) from
// the export list: only loaded modules appear, so `if (KSR.nathelper)` works.
function buildKSR() {
  const list = kemiExports();
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    const f = kemiFunction(i, e);
    if (e.module === '') {
      KSR[e.name] = f;
      if (e.name === 'err') errIndex = i;
    } else {
      let m = KSR[e.module];
      if (m === undefined || typeof m !== 'object') {
        m = {};
        KSR[e.module] = m;
        globalThis[`KSR_${e.module}`] = m;
      }
      m[e.name] = f;
    }
  }
  // app_jsdt's KSR.x: exit and drop end the route by throwing the sentinel.
  let x = KSR.x;
  if (x === undefined) {
    x = {};
    KSR.x = x;
    globalThis.KSR_x = x;
  }
  const drop = x.drop;
  x.exit = function () {
    throw EXIT;
  };
  x.drop = function () {
    if (drop !== undefined) drop();
    throw EXIT;
  };
  // No WASI stdio in the component: console output goes to the server's log.
  const log = (name) => {
    const f = KSR[name];
    return function () {
      if (f === undefined) return;
      const parts = [];
      for (let i = 0; i < arguments.length; i++) parts.push(String(arguments[i]));
      try {
        f(parts.join(' ') + '\n');
      } catch (e) {
        if (!exitSignal(e)) throw e;
      }
    };
  };
  globalThis.console = {
    log: log('info'),
    info: log('info'),
    debug: log('dbg'),
    warn: log('warn'),
    error: log('err'),
  };
}

// The script, as a global script (app_jsdt's duk_peval), named for stack traces.
(0, eval)(`${SCRIPT_SOURCE}\n//# sourceURL=${SCRIPT_NAME}`);

if (typeof globalThis.ksr_request_route !== 'function') {
  throw new Error(`${SCRIPT_NAME}: no function ksr_request_route`);
}

let initialized = false;

export function init(config) {
  globalThis.kemibox = { config };
  if (!initialized) {
    buildKSR();
    initialized = true;
  }
}

// Runs route function `name`; an exit ends it normally. Any other exception is logged
// with its JS stack and thrown on: an uncaught exception traps the component, and the
// host answers 500 (the world's routes have no error result).
function run(name, f) {
  try {
    f();
  } catch (e) {
    if (exitSignal(e)) return;
    if (e instanceof Error) {
      logError(`error stack from js: ${e.stack ? `${e}\n${e.stack}` : String(e)}`);
    } else {
      logError(`error from js: ${String(e)}\n`);
    }
    logError(`error executing: ${name}\n`);
    throw e;
  }
}

export function requestRoute() {
  run('ksr_request_route', globalThis.ksr_request_route);
}

export function replyRoute() {
  const f = globalThis.ksr_reply_route;
  if (typeof f === 'function') run('ksr_reply_route', f);
}

export function route(name) {
  const f = globalThis[name];
  if (typeof f !== 'function') return false;
  run(name, f);
  return true;
}

// The onsend route (ksr_onsend_route), just before a message leaves; false when the
// script defines none (kemibox then stops calling it for this plugin version).
export function onsendRoute() {
  const f = globalThis.ksr_onsend_route;
  if (typeof f !== 'function') return false;
  run('ksr_onsend_route', f);
  return true;
}
