# Shared by bench/basic-js-vs-lua.sh and bench/python-runtime-ab.sh (sourced, not run):
# the basic-script configs, CPU sampling and the sipp digest-REGISTER load.
# The caller sets: out (a scratch directory), port, rate, secs.

# examples/basic-kemi/kemibox.toml on udp:127.0.0.1:$port with the database in $out and
# usrloc in memory.
basic_config() {
  sed -e "s#\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"#\"udp:127.0.0.1:$port\"#" \
      -e "s#sqlite://kamailio.sqlite#sqlite://$out/kamailio.sqlite#" \
      -e 's#db_mode = 2#db_mode = 0#' -e '/^preload = "location"/d' \
      examples/basic-kemi/kemibox.toml
}

# basic_config with the Lua script replaced by ROUTING (the [routing] lines, "\n"
# separated) and nathelper + permissions loaded (the JS and Python scripts call them
# without testing for them).
plugin_config() {  # ROUTING
  basic_config | sed -e 's#"pike", "acc"\]#"pike", "acc", "nathelper", "permissions"]#' \
    -e '/^engine = "lua"/d' -e "s#^script = .*#$1#"
}

# utime+stime of a process and its children (Kamailio forks its workers from the main
# one), in clock ticks.
cpu() {  # PID
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# Loads the server PID (started by the caller) with sipp registering alice with digest
# auth at $rate/s for $secs s, stops it, and prints NAME's CPU-µs per registration
# (from the sipp start to 2 s after it ends).
measure_registrations() {  # NAME PID
  local name=$1 pid=$2
  sleep 2
  local hz; hz=$(getconf CLK_TCK)
  local c0; c0=$(cpu "$pid")
  sipp -sf tests/sipp/register-auth.xml -s alice -au alice -ap alice123 \
    -r "$rate" -m $((rate * secs)) -nostdin -timeout $((secs + 20)) -timeout_error \
    -i 127.0.0.1 -p $((port + 10)) "127.0.0.1:$port" >"$out/sipp.out" 2>&1 || true
  sleep 2
  local c1; c1=$(cpu "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ok failed
  ok=$(grep "Successful call" "$out/sipp.out" | tail -1 | awk -F'|' '{print $NF}' | tr -d ' ')
  failed=$(grep "Failed call" "$out/sipp.out" | tail -1 | awk -F'|' '{print $NF}' | tr -d ' ')
  awk -v n="$name" -v c="$((c1 - c0))" -v hz="$hz" -v ok="$ok" -v f="$failed" \
    'BEGIN { printf "%-5s %8.1f CPU-us/registration  (%s ok, %s failed)\n", n, c * 1e6 / hz / (ok > 0 ? ok : 1), ok, f }'
}
