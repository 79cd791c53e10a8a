"""KSR: the Kamailio KEMI functions for Python routing scripts (as app_python3's KSR).

Empty until the plugin's `init`: kemibox's runtime (`kemibox.py`) then fills it from the
host's export list, `KSR.<function>` for the core and `KSR.<module>.<function>` for each
loaded module only (so `if hasattr(KSR, "nathelper")` and `KSR.nathelper` behave as on
Kamailio). A script's top level, run when the plugin is built, may `import KSR` and
define things, but not call `KSR.*`.
"""
