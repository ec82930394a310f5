"""The webui extension's host code (AUTOMATIC1111 1.9+ and Forge): `model` — what the loaded checkpoint is,
`search` — VRG+ searched on it through the webui's own sampler. `scripts/vrg_schedulers.py` wires them in;
nothing here imports the webui's `modules`, so the tests run them against its real parts one by one."""

PREFIX, PLUS_PREFIX = "vrg_", "vrgplus_"  # the schedule types VRG adds: vrg_<table>_<base>, vrgplus_<schedule file>
