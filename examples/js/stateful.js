// A transaction-stateful proxy in JavaScript (Kamailio app_jsdt style) for kemibox:
// retransmissions absorbed, CANCEL matched to its INVITE, serial forking to the URI of
// an X-Fallback header in the failure route, a branch route marking every branch.
// The plugin's config (`[routing] config`, seen as `kemibox.config`) may be
// `marker=NAME`: relayed requests then carry X-Routing-Version: NAME and those the
// failure route relays X-Failure-Version: NAME.

var MARKER = null;

function marker() {
	if (MARKER === null) {
		var c = (typeof kemibox === "object" && kemibox.config) ? kemibox.config : "";
		MARKER = c.indexOf("marker=") === 0 ? c.substring(7) : "";
	}
	return MARKER;
}

function ksr_request_route() {
	if (KSR.maxfwd.process_maxfwd(10) < 0) {
		KSR.sl.sl_send_reply(483, "Too Many Hops");
		KSR.x.exit();
	}
	if (KSR.is_CANCEL()) {
		if (KSR.tm.t_check_trans() > 0) {
			KSR.tm.t_relay();
		}
		KSR.x.exit();
	}
	// Retransmissions and ACKs to negative replies are absorbed here.
	if (KSR.tm.t_check_trans() == 0) {
		KSR.x.exit();
	}
	if (KSR.is_INVITE()) {
		KSR.tm.t_on_failure("ksr_failure_manage");
		KSR.tm.t_on_branch("ksr_branch_mark");
	}
	if (marker() !== "") {
		KSR.hdr.append("X-Routing-Version: " + marker() + "\r\n");
	}
	if (KSR.tm.t_relay() < 0) {
		KSR.sl.sl_reply_error();
	}
}

// Every branch of a relayed INVITE.
function ksr_branch_mark() {
	KSR.hdr.append("X-Branch: js\r\n");
}

// On a busy or unreachable first target, try the one named in X-Fallback, if any.
function ksr_failure_manage() {
	if (KSR.tm.t_is_canceled() > 0) {
		return;
	}
	var fallback = KSR.pv.get("$hdr(X-Fallback)");
	if (fallback !== null && KSR.tm.t_check_status("486|408") > 0) {
		if (marker() !== "") {
			KSR.hdr.append("X-Failure-Version: " + marker() + "\r\n");
		}
		KSR.seturi(fallback);
		KSR.tm.t_relay();
	}
}
