// Test script of the onsend route in JavaScript (tests/tests/onsend.rs): the same logic
// as the Lua script there. The plugin config is `IP:PORT`, the destination whose sends
// the onsend route drops. Requests to user `sl` are forwarded statelessly, the others
// relayed by tm.

function ksr_request_route() {
	if (KSR.tm.t_check_trans() == 0) {
		KSR.x.exit();
	}
	if (KSR.pv.get("$rU") == "sl") {
		if (KSR.forward() < 0) {
			KSR.sl.sl_send_reply(500, "forward failed");
		}
		KSR.x.exit();
	}
	if (KSR.tm.t_relay() < 0) {
		KSR.sl.sl_reply_error();
	}
}

function ksr_onsend_route() {
	var ip = KSR.pv.get("$snd(ip)");
	var port = KSR.pv.get("$snd(port)");
	KSR.info("onsend: " + KSR.pv.get("$snd(sproto)") + " " + ip + ":" + port +
		" proto=" + KSR.pv.get("$snd(proto)") + "\n");
	if (ip + ":" + port == kemibox.config) {
		KSR.x.drop();
	}
}
