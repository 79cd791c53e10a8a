-- A stateless KEMI routing script for kemibox (and Kamailio): sanity checks, keepalive
-- answers, then forward every request to its Request-URI (or $du).

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	-- 1+2+4+32+64+128+256+512+1024 (Kamailio's names: ruri version and scheme, required
	-- headers, cseq method and value, content-length, expires, proxy-require, uris)
	if KSR.sanity.sanity_check(2023, 7) < 0 then
		KSR.err("malformed SIP message from " .. KSR.kx.get_srcip() .. ":" .. KSR.kx.get_srcport() .. "\n")
		KSR.x.exit()
	end
	if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.corex.has_ruri_user() < 0 then
		KSR.sl.sl_send_reply(200, "Keepalive")
		KSR.x.exit()
	end
	if KSR.is_myself_ruri() then
		-- Nothing is registered here: the registrar comes with the stateful issue.
		KSR.sl.sl_send_reply(404, "Not here")
		KSR.x.exit()
	end
	if KSR.forward() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ksr_reply_route()
	return 1
end
