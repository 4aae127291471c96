"""twistd dropin: C{twistd pypid} runs the package index (see L{pypid.tap})."""

from twisted.application.service import ServiceMaker

pypid = ServiceMaker(
    "pypid", "pypid.tap", "A private Python package index", "pypid"
)
