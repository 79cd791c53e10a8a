# Cost of one KEMI call from a Python plugin, measured inside a route (a one-off tool
# for bench/README.md, not a routing script). Build and run it:
#   kemibox plugin build bench/python-calls.py -o /tmp/python-calls.wasm
#   a wasm config with plugin = "/tmp/python-calls.wasm" and
#   [routing.limits] host_calls = 100000, deadline_ms = 5000
# then send any request: the reply's reason phrase gives, in µs per iteration, an empty
# loop, KSR.is_OPTIONS(), KSR.pv.get("$rm"), the raw kemi.call of pv.get with a prebuilt
# argument list (componentize-py's import glue alone), and the lookup of
# KSR.sl.sl_send_reply.
import time

import KSR as KSR
from wit_world.imports import kemi
from wit_world.imports.types import Value_Str

N = 2000


class Calls:
    def ksr_request_route(self, msg):
        out = []
        t = time.perf_counter
        a = t()
        for _ in range(N):
            pass
        out.append((t() - a) / N)
        f = KSR.is_OPTIONS
        a = t()
        for _ in range(N):
            f()
        out.append((t() - a) / N)
        g = KSR.pv.get
        a = t()
        for _ in range(N):
            g("$rm")
        out.append((t() - a) / N)
        idx = [i for i, e in enumerate(kemi.exports())
               if e.module == "pv" and e.name == "get"][0]
        args = [Value_Str("$rm")]
        c = kemi.call
        a = t()
        for _ in range(N):
            c(idx, args)
        out.append((t() - a) / N)
        a = t()
        for _ in range(N):
            KSR.sl.sl_send_reply
        out.append((t() - a) / N)
        KSR.sl.sl_send_reply(200, "us " + " ".join("%.2f" % (x * 1e6) for x in out))


def mod_init():
    return Calls()
