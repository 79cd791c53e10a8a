// A stateless KEMI routing script in JavaScript (Kamailio app_jsdt style) for kemibox:
// sanity checks, keepalive answers, then forward every request to its Request-URI (or
// $du). Build it into a wasm plugin with
//   kemibox plugin build examples/js/stateless.js -o stateless.wasm
// and run it with examples/js/kemibox.toml.

function ksr_request_route() {
	if (KSR.maxfwd.process_maxfwd(10) < 0) {
		KSR.sl.sl_send_reply(483, "Too Many Hops");
		KSR.x.exit();
	}
	// 1+2+4+32+64+128+256+512+1024 (ruri, version, scheme, required headers, cseq,
	// content-length, expires, proxy-require, uris)
	if (KSR.sanity.sanity_check(2023, 7) < 0) {
		KSR.err("malformed SIP message from " + KSR.kx.get_srcip() + ":"
				+ KSR.kx.get_srcport() + "\n");
		KSR.x.exit();
	}
	if (KSR.is_OPTIONS() && KSR.is_myself_ruri() && KSR.corex.has_ruri_user() < 0) {
		KSR.sl.sl_send_reply(200, "Keepalive");
		KSR.x.exit();
	}
	if (KSR.is_myself_ruri()) {
		KSR.sl.sl_send_reply(404, "Not here");
		KSR.x.exit();
	}
	if (KSR.forward() < 0) {
		KSR.sl.sl_reply_error();
	}
}

function ksr_reply_route() {
	return 1;
}
