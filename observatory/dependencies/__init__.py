"""The dependency map: what each destination hangs on, how every node is doing now, and
what to do when one breaks (``observatory deps``, the TUI's ``d`` screen).

``observed`` reads what has been seen (traffic, probes, incidents, drills) through any read
cursor; ``document`` puts it together with the config; ``render`` writes it as a table,
Markdown or JSON.
"""

from observatory.dependencies.document import DepsDocument, build_document, dependency_node
from observatory.dependencies.observed import probe_states
from observatory.dependencies.render import render

__all__ = ["DepsDocument", "build_document", "dependency_node", "probe_states", "render"]
