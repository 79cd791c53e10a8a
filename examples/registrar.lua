-- A registrar and stateless proxy for kemibox (and Kamailio): REGISTER is saved in the
-- location table; other requests to a local user go to its registered contact.

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.sanity.sanity_check(2023, 7) < 0 then
		KSR.x.exit()
	end
	if KSR.is_REGISTER() then
		if KSR.registrar.save("location", 0) < 0 then
			KSR.sl.sl_reply_error()
		end
		KSR.x.exit()
	end
	if KSR.is_myself_ruri() then
		local rc = KSR.registrar.lookup("location")
		if rc < 0 then
			if rc == -2 then
				KSR.sl.send_reply(405, "Method Not Allowed")
			else
				KSR.sl.send_reply(404, "Not Found")
			end
			KSR.x.exit()
		end
	end
	if KSR.forward() < 0 then
		KSR.sl.sl_reply_error()
	end
end
