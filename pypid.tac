"""
Run pypid with C{twistd -ny pypid.tac}: the same service as C{twistd pypid}.

The configuration file comes from the PYPID_CONFIG environment variable
(default: etc/pypid.ini when it exists, else the embedded defaults).
"""

import os

from twisted.application.service import Application

from pypid.tap import Options, makeService

_config = os.environ.get("PYPID_CONFIG") or (
    "etc/pypid.ini" if os.path.exists("etc/pypid.ini") else None)
_options = Options()
_options.parseOptions(["--config", _config] if _config else [])

application = Application("pypid")
makeService(_options).setServiceParent(application)
