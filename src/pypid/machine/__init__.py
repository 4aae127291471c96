"""
What the workers of one machine share: the ring in shared memory
(L{pypid.machine.ring.ChangeRing}), a doorbell for the journal and the
carrier of the topics each worker's hub tells and hears
(L{pypid.machine.topics}).
"""
