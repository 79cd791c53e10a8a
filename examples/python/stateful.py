# A transaction-stateful proxy in Python (Kamailio app_python3 style) for kemibox:
# retransmissions absorbed, CANCEL matched to its INVITE, serial forking to the URI of an
# X-Fallback header in the failure route, a branch route marking every branch.
# The plugin's config (`[routing] config`, seen as `kemibox.config`) may be
# `marker=NAME`: relayed requests then carry X-Routing-Version: NAME and those the
# failure route relays X-Failure-Version: NAME.

import sys

import KSR as KSR
import kemibox


def mod_init():
    return Stateful(kemibox.config)


class Stateful:
    def __init__(self, config):
        self.marker = config[len("marker="):] if config.startswith("marker=") else ""

    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            sys.exit()
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            sys.exit()
        # Retransmissions and ACKs to negative replies are absorbed here.
        if KSR.tm.t_check_trans() == 0:
            sys.exit()
        if KSR.is_INVITE():
            KSR.tm.t_on_failure("ksr_failure_manage")
            KSR.tm.t_on_branch("ksr_branch_mark")
        if self.marker:
            KSR.hdr.append("X-Routing-Version: %s\r\n" % self.marker)
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()
        return 1

    # Every branch of a relayed INVITE.
    def ksr_branch_mark(self, msg):
        KSR.hdr.append("X-Branch: python\r\n")
        return 1

    # On a busy or unreachable first target, try the one named in X-Fallback, if any.
    def ksr_failure_manage(self, msg):
        if KSR.tm.t_is_canceled() > 0:
            return 1
        fallback = KSR.pv.get("$hdr(X-Fallback)")
        if fallback is not None and KSR.tm.t_check_status("486|408") > 0:
            if self.marker:
                KSR.hdr.append("X-Failure-Version: %s\r\n" % self.marker)
            KSR.seturi(fallback)
            KSR.tm.t_relay()
        return 1
