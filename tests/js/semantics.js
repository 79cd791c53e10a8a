// Test script of the JavaScript runtime (tests/tests/js_plugins.rs): the user part of the
// Request-URI picks the case.

var counter = 0;

function deeper(n) {
	if (n == 0) {
		KSR.x.exit();
	}
	deeper(n - 1);
	KSR.sl.sl_send_reply(500, "after exit, depth " + n);
}

function thrower(what) {
	throw new Error("kaboom from js: " + what);
}

function ksr_request_route() {
	counter++;
	var user = KSR.pv.get("$rU");
	if (user == "exit") {
		KSR.sl.sl_send_reply(200, "before exit");
		deeper(5);
		KSR.sl.sl_send_reply(500, "after exit");
	} else if (user == "drop") {
		KSR.x.drop();
		KSR.sl.sl_send_reply(500, "after drop");
	} else if (user == "set-drop") {
		// KSR.set_drop() only marks the drop: the route goes on.
		KSR.set_drop();
		KSR.sl.sl_send_reply(200, "marked");
	} else if (user == "catch") {
		try {
			KSR.x.exit();
		} catch (e) {
			KSR.sl.sl_send_reply(200, "caught " + e);
		}
	} else if (user == "args") {
		// app_jsdt converts: an int parameter from a string, a str parameter from a number.
		KSR.sl.sl_send_reply("202", 42);
	} else if (user == "modules") {
		KSR.sl.sl_send_reply(200, [typeof KSR.tm, typeof KSR.nathelper, typeof KSR_sl,
			typeof KSR.x.exit, KSR.is_OPTIONS(), KSR.is_INVITE(),
			KSR.pv.get("$avp(nothing)"), String(KSR.sl.sl_send_reply())].join(","));
	} else if (user == "throw") {
		thrower(user);
	} else if (user == "counter") {
		KSR.sl.sl_send_reply(200, "count " + counter);
	} else if (user == "console") {
		console.log("console.log from js", 7);
		KSR.sl.sl_send_reply(200, "logged");
	} else {
		// Forwarded statelessly; the reply route may drop the reply.
		if (KSR.forward() < 0) {
			KSR.sl.sl_reply_error();
		}
	}
}

function ksr_reply_route() {
	if (KSR.hdr.is_present("X-Drop") > 0) {
		KSR.x.drop();
	}
	if (KSR.hdr.is_present("X-Throw") > 0) {
		thrower("reply");
	}
}
