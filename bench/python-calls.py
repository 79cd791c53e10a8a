# Cost of one KEMI call from a Python plugin, measured inside a route (a one-off tool
# for bench/README.md, not a routing script). Build and run it:
#   kemibox plugin build bench/python-calls.py -o /tmp/python-calls.wasm
#   a wasm config with plugin = "/tmp/python-calls.wasm" and
#   [routing.limits] host_calls = 1000000, deadline_ms = 5000
# then send any request: the reply's reason phrase gives, in µs per iteration (the best
# of three rounds of N), for each row:
#   empty      an empty loop
#   is_OPTIONS KSR.is_OPTIONS() (no argument, a bool)
#   pv.get     KSR.pv.get("$rm") (one str, an xval)
#   hdr        KSR.hdr.is_present("X-Foo") (one str, an int)
#   maxfwd_lt  KSR.maxfwd.is_maxfwd_lt(10) (one int; on kemi.call: see kemibox.py)
#   sl_reply   the lookup KSR.sl.sl_send_reply
#   kemi.call  kemi.call(index of pv.get, [Value_Str("$rm")]), a prebuilt argument
#              list: componentize-py's glue of the generic interface alone
#   t.is_opt   core.is_options(), the typed import's glue alone
#   t.pv.get   pv.get("$rm"), the typed import's glue alone
# and `direct=`, how many typed imports KSR's functions call without their glue.
import time

import KSR as KSR
import kemibox
from wit_world.imports import core, kemi, pv
from wit_world.imports.types import Value_Str

N = 2000


class Calls:
    def ksr_request_route(self, msg):
        idx = [i for i, e in enumerate(kemi.exports()) if e.module == "pv" and e.name == "get"][0]
        args = [Value_Str("$rm")]

        def empty():
            for _ in range(N):
                pass

        def is_OPTIONS():
            f = KSR.is_OPTIONS
            for _ in range(N):
                f()

        def pv_get():
            f = KSR.pv.get
            for _ in range(N):
                f("$rm")

        def hdr():
            f = KSR.hdr.is_present
            for _ in range(N):
                f("X-Foo")

        def maxfwd_lt():
            f = KSR.maxfwd.is_maxfwd_lt
            for _ in range(N):
                f(10)

        def sl_reply():
            for _ in range(N):
                KSR.sl.sl_send_reply

        def kemi_call():
            c = kemi.call
            for _ in range(N):
                c(idx, args)

        def t_is_opt():
            f = core.is_options
            for _ in range(N):
                f()

        def t_pv_get():
            f = pv.get
            for _ in range(N):
                f("$rm")

        rows = [
            ("empty", empty),
            ("is_OPTIONS", is_OPTIONS),
            ("pv.get", pv_get),
            ("hdr", hdr),
            ("maxfwd_lt", maxfwd_lt),
            ("sl_reply", sl_reply),
            ("kemi.call", kemi_call),
            ("t.is_opt", t_is_opt),
            ("t.pv.get", t_pv_get),
        ]
        best = [1e9] * len(rows)
        t = time.perf_counter
        for _ in range(3):
            for i, (_, f) in enumerate(rows):
                a = t()
                f()
                best[i] = min(best[i], (t() - a) / N)
        KSR.sl.sl_send_reply(
            200,
            "direct=%s us %s"
            % (
                getattr(kemibox, "DIRECT_CALLS", "-"),
                " ".join("%s=%.2f" % (n, x * 1e6) for (n, _), x in zip(rows, best)),
            ),
        )


def mod_init():
    return Calls()
