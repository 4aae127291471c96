"""
Work the daemon does on its own, on a clock: L{pypid.jobs.periodic.Periodic},
the one loop every periodic job runs in (snapshots, syncs, the recycle bin,
retention, download counts, the upstreams' saved state, advisories, the
systemd watchdog).
"""
