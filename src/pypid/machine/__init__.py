"""
What the workers of one machine share: the ring
through which each announces the changes it acknowledged
(L{pypid.machine.ring.ChangeRing}).
"""
