-- Benchmark script: the stateless forwarder that the Kamailio baseline
-- (shared/bench kamailio:stateless-lua) runs, in the same KEMI calls.
local UAS = "sip:127.0.0.1:5080"

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	KSR.setdsturi(UAS)
	KSR.forward()
end
