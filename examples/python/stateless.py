# A stateless KEMI routing script in Python (Kamailio app_python3 style) for kemibox:
# sanity checks, keepalive answers, then forward every request to its Request-URI (or
# $du). Build it into a wasm plugin with
#   kemibox plugin build examples/python/stateless.py -o examples/python/stateless.wasm
# and run it with examples/python/kemibox.toml.

import KSR as KSR


def mod_init():
    return Stateless()


class Stateless:
    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return -255
        # 1+2+4+32+64+128+256+512+1024 (ruri, version, scheme, required headers, cseq,
        # content-length, expires, proxy-require, uris)
        if KSR.sanity.sanity_check(2023, 7) < 0:
            KSR.err("malformed SIP message from %s:%d\n"
                    % (KSR.kx.get_srcip(), KSR.kx.get_srcport()))
            return -255
        if (KSR.is_OPTIONS() and KSR.is_myself_ruri()
                and KSR.corex.has_ruri_user() < 0):
            KSR.sl.sl_send_reply(200, "Keepalive")
            return -255
        if KSR.is_myself_ruri():
            KSR.sl.sl_send_reply(404, "Not here")
            return -255
        if KSR.forward() < 0:
            KSR.sl.sl_reply_error()
        return 1

    def ksr_reply_route(self, msg):
        return 1
