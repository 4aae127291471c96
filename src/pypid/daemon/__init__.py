"""
The daemon as a process: the ordered container of its parts
(L{container}), and the parts that belong to the process rather than to a
subsystem: its thread pools (L{pools}), its listeners (L{listeners}) and
systemd's notifications (L{systemd}). The composition root,
L{pypid.tap}, lists the parts; C{docs/architecture.rst} says how to add one.
"""

from __future__ import annotations
