"""kemibox's Python runtime: Kamailio app_python3 scripts as routing plugins.

`kemibox plugin build script.py -o out.wasm` writes this module, `KSR.py` and
`kemibox_script.py` (the script's name and text) into a build directory and has
componentize-py make a component of the world `plugin` of `wit/kemi.wit` with this module
as the app (class `WitWorld`).

- Build time (componentize-py runs the app's top level, then snapshots the interpreter):
  the script is compiled and run as a module named after its file, as app_python3 imports
  it. `KSR` exists but is empty: imports cannot be called while building.
- `init(config)`: `KSR` is filled from the export list of the generic interface `kemi`,
  then the script's `mod_init()` gives the object whose methods are the routes, and its
  `child_init(rank)` runs when it has one.
- A `KSR` function calls the export's typed import (`core.is-options`, `pv.get`, ...)
  when that converts arguments and result exactly as `kemi.call` would (`_typed_for`),
  else `kemi.call`; either way with app_python3's argument checks and conversions.
- Routes: `request-route` runs `ksr_request_route(msg)`, `reply-route`
  `ksr_reply_route(msg)` if defined, `route(name)` the method `name` (failure, branch and
  onreply routes named at run time). Their return values are ignored, as app_python3
  does (the script's own -255 convention ends a route by returning from it).
  `SystemExit` (`sys.exit()`, `exit()`, and `KSR.x.exit()`/`KSR.x.drop()` here) ends a
  route normally. Any other exception is logged with its traceback and the component
  traps: kemibox answers the request with its error reply (500).
"""

import gc
import os
import sys
import traceback
import linecache

import KSR
import kemibox_script
import wit_world
from wit_world.imports import kemi
from wit_world.imports.types import (
    Value_None_,
    Value_Bool,
    Value_Int,
    Value_Str,
    CallError_Exit,
    CallError_Drop,
)
from componentize_py_types import Ok, Err

# The `[routing] config` string of the kemibox configuration (set by `init`).
config = ""

# Registry index of `KSR.err`, which the runtime logs with (found by `init`).
_err_index = -1


class KemiExit(SystemExit):
    """Raised by `KSR.x.exit()`, `KSR.x.drop()` and by a KEMI call the host ended with
    exit or drop: ends the route (a `SystemExit`, as app_python3's `sys.exit()`)."""


def _log(index, text):
    """Logs through a KEMI log function; to stderr (the server's log, target `wasm`)
    outside a route, where KEMI calls do not run."""
    if index >= 0:
        try:
            kemi.call(index, [Value_Str(text)])
            return
        except Err:
            pass
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:
        pass


def _log_err(text):
    _log(_err_index, text)


def _call_failed(e, full, last):
    """A call the host answered with a call-error: exit and drop end the route, a
    mismatch is logged and answers False (app_python3's answer to bad parameters).
    `last`: the call's last argument (the text of a log function)."""
    v = e.value
    if isinstance(v, (CallError_Exit, CallError_Drop)):
        raise KemiExit()
    reason = getattr(v, "value", "")
    if full in _OUTSIDE_OK and "outside a route" in reason:
        # mod_init, child_init: Kamailio logs them (with a faked message).
        _log(-1, last if isinstance(last, str) else "")
        return 0
    _log_err("%s: %s\n" % (full, reason))
    return False


# Log functions: outside a route (mod_init, child_init) their text goes to stderr.
_OUTSIDE_OK = {
    "KSR.dbg",
    "KSR.info",
    "KSR.notice",
    "KSR.warn",
    "KSR.err",
    "KSR.crit",
    "KSR.log",
}


def _xval(v):
    """An xval as app_python3 returns it: None, or the bool, int or str."""
    if type(v) is Value_None_:
        return None
    return v.value


def _result(ret):
    """The conversion of a call's value to Python, as app_python3 returns it
    (sr_kemi_apy_return_xval / _int)."""
    if ret == kemi.ReturnType.BOOL:

        def conv(v):
            t = type(v)
            if t is Value_Bool:
                return v.value
            if t is Value_Int:
                return v.value > 0
            return t is Value_Str

    elif ret == kemi.ReturnType.XVAL:
        conv = _xval

    else:

        def conv(v):
            t = type(v)
            if t is Value_Int or t is Value_Str:
                return v.value
            if t is Value_Bool:
                return 1 if v.value else -1
            return 0

    return conv


def _c_int(v):
    """PyLong_AsLong, then the cast to a C int of an `int` parameter."""
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return v
    if not -(1 << 63) <= v < (1 << 63):
        raise OverflowError("Python int too large to convert to C long")
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _args(args, params, full):
    """The arguments of a call (C ints and strs), checked as app_python3 does
    (sr_apy_kemi_exec_func_ex); None (logged) when they do not fit."""
    argc = len(args)
    vals = []
    for i, is_int in enumerate(params):
        if i >= argc:
            _log_err(
                "invalid number of parameters - func: %s idx: %d argc: %d\n" % (full, i, argc)
            )
            return None
        a = args[i]
        if is_int:
            if a is True:
                a = 1
            elif a is False:
                a = 0
            elif not isinstance(a, int):
                _log_err("non-number parameter - func: %s idx: %d argc: %d\n" % (full, i, argc))
                return None
            vals.append(_c_int(a))
        else:
            if not isinstance(a, str):
                _log_err("non-string parameter - func: %s idx: %d argc: %d\n" % (full, i, argc))
                return None
            vals.append(a)
    return vals


def _kemi_function(index, info, full, params):
    """`KSR[.module].name` through the generic `kemi.call` (list<value> in, value out)."""
    n = len(params)
    conv = _result(info.ret)
    call = kemi.call

    if n == 0:

        def f(*args):
            try:
                return conv(call(index, []))
            except Err as e:
                return _call_failed(e, full, None)

    elif n == 1 and not params[0]:
        # One str (the most common shape): the exact type checked inline.

        def f(*args):
            if args and type(args[0]) is str:
                a = args[0]
            else:
                vals = _args(args, params, full)
                if vals is None:
                    return False
                a = vals[0]
            try:
                return conv(call(index, [Value_Str(a)]))
            except Err as e:
                return _call_failed(e, full, a)

    elif n == 1:
        # One int.

        def f(*args):
            if args and type(args[0]) is int and -0x80000000 <= args[0] <= 0x7FFFFFFF:
                a = args[0]
            else:
                vals = _args(args, params, full)
                if vals is None:
                    return False
                a = vals[0]
            try:
                return conv(call(index, [Value_Int(a)]))
            except Err as e:
                return _call_failed(e, full, a)

    else:

        def f(*args):
            vals = _args(args, params, full)
            if vals is None:
                return False
            wrapped = [Value_Int(a) if p else Value_Str(a) for p, a in zip(params, vals)]
            try:
                return conv(call(index, wrapped))
            except Err as e:
                return _call_failed(e, full, vals[-1])

    return f


# The typed imports (`wit_world.imports.core`, `.pv`, ...): a KEMI call through them
# skips the `list<value>` argument and, for bool and int results, the `value` variant
# that componentize-py's glue makes dataclasses of (`KSR.is_OPTIONS()` 0.85 µs instead of
# 1.65, `KSR.pv.get("$rm")` 1.7 instead of 2.5: bench/python-calls.py). Found at build
# time (in the snapshot): (KEMI module, lowercase export name) -> (glue function,
# parameter kinds (True: int), result kind, `_direct`). WIT names are the export names
# in kebab case (`is-invite` for `is_INVITE`), so the lowercase name finds a function.
_TYPED = {}


def _find_typed():
    import importlib
    import pkgutil

    import wit_world.imports as imports
    from wit_world.imports import types

    value = types.Value
    for m in pkgutil.iter_modules(imports.__path__):
        if m.name in ("kemi", "types"):
            continue
        try:
            mod = importlib.import_module("wit_world.imports." + m.name)
        except Exception:
            continue
        kemi_module = "" if m.name == "core" else m.name
        for fname, fn in vars(mod).items():
            if getattr(fn, "__module__", None) != mod.__name__ or not hasattr(fn, "__code__"):
                continue
            try:
                ann = dict(fn.__annotations__)
            except Exception:
                continue
            if "return" not in ann:
                continue
            r = ann.pop("return")
            if r is bool:
                kind = "bool"
            elif r is int:
                kind = "int"
            elif r is None:
                kind = "none"
            elif r == value:
                kind = "value"
            else:
                continue
            kinds = []
            for a in ann.values():
                if a is int:
                    kinds.append(True)
                elif a is str:
                    kinds.append(False)
                else:
                    break
            else:
                _TYPED[(kemi_module, fname)] = (fn, tuple(kinds), kind, _direct(fn, len(kinds)))


# componentize-py 0.25.1's glue of a typed import, e.g. `core.is_method`:
_GLUE_SRC = """
from componentize_py_types import Result, Ok, Err, Some
import componentize_py_runtime
def {name}({params}):
    {doc!r}
    result = componentize_py_runtime.call_import({index}, [{params}])
    if isinstance(result, Err):
        raise result
    else:
        return result.value
"""


def _direct(fn, n):
    """`(call_import, index)` of the typed import `fn` when its glue is exactly
    `_GLUE_SRC` (the same bytecode, names and constants as that source compiled with the
    index its bytecode loads): the fast paths then make that call themselves, saving the
    glue's Python frame. None otherwise (the glue function is called)."""
    import dis

    try:
        code = fn.__code__
        params = code.co_varnames[:n]
        if code.co_argcount != n or code.co_kwonlyargcount or code.co_flags & 0x0C:
            return None
        index = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_SMALL_INT", "LOAD_CONST") and type(ins.argval) is int:
                index = ins.argval
                break
        if index is None:
            return None
        src = _GLUE_SRC.format(
            name=fn.__name__, params=", ".join(params), doc=fn.__doc__ or "", index=index
        )
        ref = [
            c
            for c in compile(src, "<glue>", "exec").co_consts
            if type(c) is type(code) and c.co_name == fn.__name__
        ][0]
        doc = fn.__doc__
        if (
            ref.co_code != code.co_code
            or ref.co_names != code.co_names
            or ref.co_varnames != code.co_varnames
            or [c for c in ref.co_consts if c != doc] != [c for c in code.co_consts if c != doc]
        ):
            return None
        runtime = fn.__globals__["componentize_py_runtime"]
        if fn.__globals__.get("Err") is not Err:
            return None
        return runtime.call_import, index
    except Exception:
        return None


_find_typed()

# How many typed imports the fast paths call directly (a check for the benchmarks).
DIRECT_CALLS = sum(1 for _t in _TYPED.values() if _t[3] is not None)

# Exports whose int result may not fit the typed imports' s32 (which the host clamps):
# they stay on `kemi.call` and keep app_python3's full-width int.
_WIDE_INTS = {
    ("pv", "geti"),
    ("htable", "sht_inc"),
    ("htable", "sht_dec"),
    ("kx", "get_defn"),
    ("kx", "get_envn"),
    ("kx", "get_conid"),
    ("kx", "get_timestamp"),
}

# INT exports typed as bool in the WIT whose value is only ever 1 or -1: the bool gives
# the int back.
_PLUS_MINUS_ONE = {("hdr", "is_present")}


# Per KEMI module, how many of its exports have each lowercase name (made on first use):
# a typed function is used only for a name no other export of its module shares.
_lower_counts = {}


def _lower_count(module, low):
    counts = _lower_counts.get(module)
    if counts is None:
        counts = _lower_counts[module] = {}
        for n in _by_module.get(module, ()):
            n = n.lower()
            counts[n] = counts.get(n, 0) + 1
    return counts.get(low, 0)


def _typed_for(info, params):
    """The typed import of export `info` and how its result becomes app_python3's,
    when that is exact: the same parameters, and
    - BOOL export, WIT bool: the bool ("r"); WIT s32 (`setflag`, `pv.sets`: the host's
      1/-1 for a bool, the int for an int): `r > 0`, as app_python3's BOOL conversion;
    - XVAL export, WIT value: converted as from `kemi.call`;
    - INT export, WIT s32: the int, but for those that may not fit 32 bits; WIT bool:
      1/-1 for those that only answer 1 or -1 (`hdr.is_present`);
    - NONE export, WIT unit: 0.
    Otherwise None: the export stays on `kemi.call` (`maxfwd.is_maxfwd_lt`, an int
    typed as a bool)."""
    name = info.name
    low = name.lower()
    t = _TYPED.get((info.module, low))
    if t is None or tuple(params) != t[1]:
        return None
    if _lower_count(info.module, low) != 1:
        return None
    ret = info.ret
    kind = t[2]
    out = None
    if ret == kemi.ReturnType.BOOL:
        out = {"bool": "r", "int": "r > 0"}.get(kind)
    elif ret == kemi.ReturnType.XVAL:
        if kind == "value":
            out = "conv(r)"
    elif ret == kemi.ReturnType.INT:
        if kind == "int" and (info.module, name) not in _WIDE_INTS:
            out = "r"
        elif kind == "bool" and (info.module, name) in _PLUS_MINUS_ONE:
            out = "1 if r else -1"
    elif kind == "none":
        out = "0"
    if out is None:
        return None
    return t[0], t[1], out, t[3]


# A typed call with exact argument types runs the fast path made for its shape (its
# parameter kinds and result kind, a function compiled at build time); any other
# arguments go through `_args` (app_python3's checks and conversions, logged errors).
_SHAPE_SRC = """
def make(tf, conv, full, slow):
    def f(*args):
        if len(args) >= {n}:
{unpack}
            if {checks}:
                try:
                    r = tf({call})
                except Err as e:
                    return _call_failed(e, full, {last})
                return {ret}
        return slow(args)
    return f


def make_direct(call_import, index, full, slow):
    def f(*args):
        if len(args) >= {n}:
{unpack}
            if {checks}:
                r = call_import(index, [{call}])
                if type(r) is Ok or not isinstance(r, Err):
                    r = r.value
                    return {ret_direct}
                return _call_failed(r, full, {last})
        return slow(args)
    return f


def make_direct0(call_import, index, full, slow):
    no_args = []

    def f(*args):
        r = call_import(index, no_args)
        if type(r) is Ok or not isinstance(r, Err):
            r = r.value
            return {ret_direct}
        return _call_failed(r, full, None)
    return f
"""

_SHAPES = {}


def _shape(kinds, kind):
    """The factory of the fast path of typed calls with parameter kinds `kinds` and
    result expression `kind` (of the typed result `r`)."""
    key = (kinds, kind)
    make = _SHAPES.get(key)
    if make is None:
        n = len(kinds)
        names = ["a%d" % i for i in range(n)]
        checks = [
            "type(%s) is int and -0x80000000 <= %s <= 0x7FFFFFFF" % (a, a)
            if is_int
            else "type(%s) is str" % a
            for a, is_int in zip(names, kinds)
        ] or ["True"]
        src = _SHAPE_SRC.format(
            n=n,
            unpack="\n".join("            %s = args[%d]" % (a, i) for i, a in enumerate(names))
            or "            pass",
            checks=" and ".join(checks),
            call=", ".join(names),
            last=names[-1] if names else "None",
            ret=kind,
            ret_direct=kind.replace("conv(r)", "None if type(r) is Value_None_ else r.value"),
        )
        g = {"Ok": Ok, "Err": Err, "_call_failed": _call_failed, "Value_None_": Value_None_}
        exec(compile(src, "<kemibox typed %r %s>" % (kinds, kind), "exec"), g)
        make = _SHAPES[key] = (g["make"], g["make_direct0" if n == 0 else "make_direct"])
    return make


for _t in list(_TYPED.values()):
    for _out in {
        "bool": ("r",),
        "int": ("r", "r > 0"),
        "value": ("conv(r)",),
        "none": ("0",),
    }[_t[2]]:
        _shape(_t[1], _out)
_shape((False,), "1 if r else -1")
del _t, _out


def _typed_function(t, full, params):
    """`KSR[.module].name` through its typed import `t`."""
    tf, kinds, kind, direct = t
    conv = _xval

    def slow(args):
        vals = _args(args, params, full)
        if vals is None:
            return False
        try:
            r = tf(*vals)
        except Err as e:
            return _call_failed(e, full, vals[-1] if vals else None)
        if kind == "r":
            return r
        if kind == "conv(r)":
            return conv(r)
        if kind == "r > 0":
            return r > 0
        if kind == "1 if r else -1":
            return 1 if r else -1
        return 0

    make, make_direct = _shape(kinds, kind)
    if direct is not None:
        return make_direct(direct[0], direct[1], full, slow)
    return make(tf, conv, full, slow)


def _function(index, info):
    """`KSR[.module].name`: converts its arguments as app_python3 does
    (sr_apy_kemi_exec_func_ex) and calls export `index`, through its typed import when
    that converts the same way, else through `kemi.call`."""
    name = info.name
    full = "KSR.%s.%s" % (info.module, name) if info.module else "KSR." + name
    params = [p == kemi.ParamType.INT for p in info.params]  # True: int, False: str
    t = _typed_for(info, params)
    if t is not None:
        f = _typed_function(t, full, params)
    else:
        f = _kemi_function(index, info, full, params)
    f.__name__ = name
    f.__qualname__ = full
    return f


class _Module(type(sys)):
    """A module object (the script, the KSR sub-modules)."""


# The export list (`kemi.exports()`), read once by `init`.
_exports = []


def _lazy(module, names):
    """`__getattr__` of a KSR (sub-)module: makes the function of export `name` on its
    first use and keeps it in the module (most scripts touch few of the ~300 exports;
    making them all cost ~1 ms per instance)."""

    def getattr_(name):
        index = names.get(name)
        if index is None:
            raise AttributeError("module %r has no attribute %r" % (module.__name__, name))
        f = _function(index, _exports[index])
        module.__dict__[name] = f
        return f

    return getattr_


def _ksr_module(name, names):
    """A KSR sub-module (`KSR.tm`): only loaded modules exist; their functions are made
    on first use (a module `__getattr__`, PEP 562: reads of what exists stay fast)."""
    m = _Module("KSR." + name)
    m.__dict__["__getattr__"] = _lazy(m, names)
    return m


def _exit():
    """`KSR.x.exit()`: ends the route."""
    raise KemiExit()


def _modf(*args):
    """`KSR.x.modf(...)`: cfg-script module functions; not in kemibox."""
    _log_err("KSR.x.modf is not supported: there are no cfg module functions\n")
    return False


# KEMI module -> {export name: index}, made by `init`.
_by_module = {}


def _build_ksr():
    global _err_index, _exports
    _exports = kemi.exports()
    by_module = {}
    for index, info in enumerate(_exports):
        names = by_module.get(info.module)
        if names is None:
            names = by_module[info.module] = {}
        names[info.name] = index
    _by_module.update(by_module)
    ksr = KSR.__dict__
    core = by_module.pop("", {})
    ksr["__getattr__"] = _lazy(KSR, core)
    _err_index = core.get("err", -1)
    for name, names in by_module.items():
        ksr[name] = _ksr_module(name, names)
    # app_python3's KSR.x: `modf` (here only a logged failure); exit and drop end the
    # route by raising SystemExit, Kamailio's way out of a Python route.
    x = ksr.get("x")
    if x is None:
        x = ksr["x"] = _ksr_module("x", {})
    host_drop = getattr(x, "drop", None)

    def _drop():
        """`KSR.x.drop()`: marks the message dropped and ends the route."""
        if host_drop is not None:
            host_drop()
        raise KemiExit()

    x.exit = _exit
    x.drop = _drop
    x.modf = _modf
    if "route" not in core:
        ksr["route"] = _ksr_route
    ksr["__version__"] = 1003


class Msg:
    """The `msg` argument of a route (app_python3's `Router.msg`), read through `KSR.pv`
    of the message being routed."""

    __slots__ = ()

    @property
    def Type(self):
        return "SIP_REPLY" if KSR.siputils.is_reply() > 0 else "SIP_REQUEST"

    @property
    def Method(self):
        return KSR.pv.get("$rm")

    @property
    def Status(self):
        return KSR.pv.get("$rs")

    @property
    def RURI(self):
        return KSR.pv.get("$ru")

    @property
    def src_address(self):
        return (KSR.pv.get("$si"), KSR.pv.get("$sp"))

    @property
    def dst_address(self):
        return (KSR.pv.get("$Ri"), KSR.pv.get("$Rp"))

    def getHeader(self, name):
        return KSR.hdr.get(name)

    def rewrite_ruri(self, uri):
        return KSR.seturi(uri)

    def set_dst_uri(self, uri):
        return KSR.setdsturi(uri)

    def call_function(self, *args):
        return _modf(*args)

    def copy(self):
        return self


_MSG = Msg()

# The object `mod_init()` returned: its methods are the routes.
_handler = None


def _ksr_route(name):
    """`KSR.route(name)`: runs the route method `name` (Kamailio runs a cfg route block
    of that name; with a KEMI script, routes are the script's)."""
    f = getattr(_handler, name, None)
    if f is None or not callable(f):
        _log_err("route %s not found\n" % name)
        return -1
    f(_MSG)
    return 1


def _traceback(e, skip=0):
    """The traceback of `e` as Python prints it, without its first `skip` frames (the
    runtime's own)."""
    tb = e.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def _run(name, f):
    """Runs route method `f`: a SystemExit ends it normally; any other exception is
    logged with its traceback (app_python3's "Unhandled exception in the Python code")
    and the component traps (`os.abort()`: the world's routes have no error result), so
    the host answers its error reply (500) and the next message gets a fresh instance."""
    try:
        f(_MSG)
    except SystemExit:
        pass
    except BaseException as e:
        _log_err(
            "apy_exec: %s(None): Unhandled exception in the Python code:\n%s"
            % (name, _traceback(e, 1))
        )
        os.abort()


# The script: compiled under its file name (tracebacks show `script.py`, line and source
# line: linecache holds its text) and run as the module app_python3 would import.
def _load_script():
    name = kemibox_script.SCRIPT_NAME
    source = kemibox_script.SCRIPT_SOURCE
    mod_name = name[:-3] if name.endswith(".py") else name
    lines = source.splitlines(True)
    # An mtime of None: linecache.checkcache never drops it (there is no such file).
    linecache.cache[name] = (len(source), None, lines, name)
    module = _Module(mod_name)
    module.__file__ = name
    sys.modules[mod_name] = module
    exec(compile(source, name, "exec"), module.__dict__)
    return module


_script = _load_script()

# Everything made so far (the interpreter, the stdlib modules, the script) lives in the
# snapshot every instance starts from, mapped copy-on-write: out of the collector's
# reach, a collection never walks (and so never faults in) those pages.
gc.collect()
gc.freeze()


class WitWorld(wit_world.WitWorld):
    def init(self, cfg):
        global config, _handler
        config = cfg
        if _handler is not None:
            return
        _build_ksr()
        mod_init = getattr(_script, "mod_init", None)
        if mod_init is None or not callable(mod_init):
            raise Err("%s: no function mod_init" % kemibox_script.SCRIPT_NAME)
        try:
            handler = mod_init()
        except BaseException as e:
            raise Err("%s: mod_init failed:\n%s" % (kemibox_script.SCRIPT_NAME, _traceback(e, 1)))
        if handler is None:
            raise Err(
                "%s: mod_init returned None; it should return a class instance"
                % kemibox_script.SCRIPT_NAME
            )
        f = getattr(handler, "ksr_request_route", None)
        if f is None or not callable(f):
            raise Err(
                "%s: the object of mod_init has no method ksr_request_route"
                % kemibox_script.SCRIPT_NAME
            )
        child_init = getattr(handler, "child_init", None)
        if child_init is not None and callable(child_init):
            try:
                rc = child_init(1)
            except BaseException as e:
                raise Err(
                    "%s: child_init failed:\n%s" % (kemibox_script.SCRIPT_NAME, _traceback(e, 1))
                )
            if not isinstance(rc, int):
                raise Err("%s: child_init should return an int" % kemibox_script.SCRIPT_NAME)
            if rc < 0:
                raise Err("%s: child_init returned %d" % (kemibox_script.SCRIPT_NAME, rc))
        _handler = handler

    def request_route(self):
        _run("ksr_request_route", _handler.ksr_request_route)

    def reply_route(self):
        f = getattr(_handler, "ksr_reply_route", None)
        if f is not None and callable(f):
            _run("ksr_reply_route", f)

    def route(self, name):
        f = getattr(_handler, name, None)
        if f is None or not callable(f):
            return False
        _run(name, f)
        return True

    # The world export `onsend-route: func() -> bool`: runs `ksr_onsend_route(msg)` when
    # the script has it (false otherwise: kemibox then stops asking this version).
    def onsend_route(self):
        f = getattr(_handler, "ksr_onsend_route", None)
        if f is None or not callable(f):
            return False
        _run("ksr_onsend_route", f)
        return True
