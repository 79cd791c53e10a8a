-- A redirect server, for kemibox and for Kamailio alike.
--
-- REGISTER binds a user's contacts. A request to a registered user is not forwarded:
-- it is answered "302 Moved Temporarily" listing the user's contacts as Contact
-- (highest q first, as `lookup` ordered them) and, as the last resort, the user's
-- voicemail. An unknown user gets 404, a request without a user 484.
--
-- INVITEs are redirected statefully (tm): a retransmitted INVITE gets the same 302
-- again and the caller's ACK ends the transaction. Other requests are redirected
-- statelessly (sl); the ACK to a stateless negative reply is absorbed before this
-- script runs.

VOICEMAIL_DOMAIN = "voicemail.example.net"

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return
	end
	if KSR.is_ACK() then
		-- The ACK to a stateful 302 belongs to its transaction; nothing else to do.
		KSR.tm.t_check_trans()
		return
	end
	if KSR.is_REGISTER() then
		if KSR.registrar.save("location", 0) < 0 then
			KSR.sl.sl_reply_error()
		end
		return
	end
	local user = KSR.pv.get("$rU")
	if user == nil or user == "" then
		KSR.sl.sl_send_reply(484, "Address Incomplete")
		return
	end
	if KSR.registrar.lookup("location") < 0 then
		KSR.sl.sl_send_reply(404, "Not Found")
		return
	end
	KSR.corex.append_branch_uri_q("sip:" .. user .. "@" .. VOICEMAIL_DOMAIN, "0.1")
	if KSR.is_INVITE() then
		if KSR.tm.t_newtran() < 0 then
			KSR.sl.sl_reply_error()
			return
		end
		KSR.tm.t_reply(302, "Moved Temporarily")
	else
		KSR.sl.sl_send_reply(302, "Moved Temporarily")
	end
end
