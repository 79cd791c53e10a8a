# Test script of the Python runtime (tests/tests/python_plugins.rs): the user part of the
# Request-URI picks the case.

import sys

import KSR as KSR

FLAG = 5


def deeper(n):
    if n == 0:
        KSR.x.exit()
    deeper(n - 1)
    KSR.sl.sl_send_reply(500, "after exit, depth %d" % n)


def thrower(what):
    raise ValueError("kaboom from python: " + what)


def mod_init():
    KSR.info("semantics: mod_init\n")
    return Semantics()


class Semantics:
    def __init__(self):
        self.counter = 0

    def child_init(self, rank):
        KSR.info("semantics: child_init(%d)\n" % rank)
        return 0

    def ksr_request_route(self, msg):
        self.counter += 1
        user = KSR.pv.get("$rU")
        if user == "exit":
            KSR.sl.sl_send_reply(200, "before exit")
            deeper(5)
            KSR.sl.sl_send_reply(500, "after exit")
        elif user == "sys-exit":
            KSR.sl.sl_send_reply(200, "before sys.exit")
            sys.exit()
        elif user == "minus255":
            if self.helper() == -255:
                return 1
            KSR.sl.sl_send_reply(500, "after -255")
        elif user == "drop":
            KSR.x.drop()
            KSR.sl.sl_send_reply(500, "after drop")
        elif user == "set-drop":
            # KSR.set_drop() only marks the drop: the route goes on.
            KSR.set_drop()
            KSR.sl.sl_send_reply(200, "marked")
        elif user == "catch":
            # A script's `except Exception` does not see an exit (a SystemExit).
            KSR.sl.sl_send_reply(200, "not caught")
            try:
                KSR.x.exit()
            except Exception:
                KSR.sl.sl_send_reply(500, "caught")
            KSR.sl.sl_send_reply(500, "after exit")
        elif user == "args":
            # app_python3: an int parameter must be an int (or bool), a str one a str;
            # otherwise the call logs an error and answers False.
            bad = KSR.sl.sl_send_reply("202", "x")
            KSR.sl.sl_send_reply(202, "bad=%r %s" % (bad, KSR.setflag(True)))
        elif user == "modules":
            KSR.sl.sl_send_reply(200, ",".join(str(v) for v in [
                hasattr(KSR, "tm"), hasattr(KSR, "nathelper"), KSR.is_OPTIONS(),
                KSR.is_INVITE(), KSR.pv.get("$avp(nothing)"), KSR.sl.sl_send_reply(),
                KSR.pv.get("$rm"), type(KSR.pv.get("$sp")).__name__, msg.Method,
                msg.RURI.startswith("sip:modules@"), KSR.isflagset(FLAG)]))
        elif user == "throw":
            thrower(user)
        elif user == "counter":
            KSR.sl.sl_send_reply(200, "count %d" % self.counter)
        elif user == "print":
            print("print from python", 7)
            KSR.sl.sl_send_reply(200, "printed")
        elif user == "route":
            KSR.route("ksr_named")
            KSR.sl.sl_send_reply(500, "after route")
        else:
            # Forwarded statelessly; the reply route may drop the reply.
            if KSR.forward() < 0:
                KSR.sl.sl_reply_error()
        return 1

    def helper(self):
        KSR.sl.sl_send_reply(200, "minus 255")
        return -255

    def ksr_named(self, msg):
        KSR.sl.sl_send_reply(200, "named route")
        KSR.x.exit()

    def ksr_reply_route(self, msg):
        if KSR.hdr.is_present("X-Drop") > 0:
            KSR.x.drop()
        if KSR.hdr.is_present("X-Throw") > 0:
            thrower("reply")
        return 1
