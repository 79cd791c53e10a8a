/*
 * lua-src links `wasi-emulated-signal` for WASI targets (for the stand-alone `lua`
 * interpreter's SIGINT handler). The Lua library kemibox embeds never installs or
 * raises a signal, so the archive holds only this empty unit.
 */
typedef int kemibox_no_signals;
