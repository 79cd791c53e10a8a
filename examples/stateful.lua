-- A transaction-stateful proxy for kemibox (and Kamailio): retransmissions absorbed,
-- CANCEL matched to its INVITE, serial forking to a fallback in the failure route.

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			KSR.tm.t_relay()
		end
		KSR.x.exit()
	end
	-- Retransmissions and ACKs to negative replies are absorbed here.
	if KSR.tm.t_check_trans() == 0 then
		KSR.x.exit()
	end
	if KSR.is_INVITE() then
		KSR.tm.t_on_failure("ksr_failure_manage")
	end
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

-- On a busy or unreachable first target, try the one named in X-Fallback, if any.
function ksr_failure_manage()
	if KSR.tm.t_is_canceled() > 0 then
		return 1
	end
	local fallback = KSR.pv.get("$hdr(X-Fallback)")
	if fallback ~= nil and (KSR.tm.t_check_status("486|408") > 0) then
		KSR.seturi(fallback)
		KSR.tm.t_relay()
	end
end
