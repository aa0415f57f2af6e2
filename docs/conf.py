"""Sphinx configuration of the provider's documentation site.

Built offline with warnings as errors (``scripts/test``, Read the Docs): no intersphinx fetches and no external link
checks. References to our own package are checked (nitpicky); references into other projects cannot be resolved
without their inventories, so only those are ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sphinx.util.docutils import SphinxDirective  # noqa: E402

from airflow_provider_phota import __version__  # noqa: E402

project = "airflow-provider-phota"
author = "airflow-provider-phota maintainers"
copyright = "the airflow-provider-phota maintainers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_copybutton",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "snippets/README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Offline: no intersphinx (its inventories are downloads); links to other sites are written out, never checked.
nitpicky = True
nitpick_ignore_regex = [
    # Types from other projects: without their inventories they cannot resolve, and that is not a broken link of ours.
    (r"py:.*", r"(airflow|aiohttp|requests|tenacity|pendulum|fsspec|upath|openlineage|jinja2|sqlalchemy|PIL)(\..*)?"),
    (r"py:.*", r"(decimal|datetime|pathlib|collections|logging|asyncio|typing_extensions|enum|json|os|io)\..*"),
    (r"py:.*", r"(Decimal|ObjectStoragePath|Context|Connection|BaseOperator|BaseSensorOperator|TriggerEvent)"),
    (r"py:.*", r"(Session|ClientSession|ClientResponse|Response|Path|PathLike|Logger|Asset|Dataset|Retrying)"),
]

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_class_signature = "separated"
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"airflow-provider-phota {release}"
html_static_path: list[str] = []
copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True

# Names that are private by convention (a leading underscore) or type variables are not documented pages.
nitpick_ignore_regex += [
    (r"py:.*", r"(_?pytest)(\..*)?"),
    (r"py:.*", r"(.*\.)?_[A-Za-z]\w*"),
    (r"py:class", r"(.*\.)?T"),
]

# Names the docstrings mention that autodoc does not document (module constants without a doc comment, attributes
# set in __init__, aliases): each listed exactly, so any other missing name still fails the build. The fix is a
# ``#:`` comment or a qualified name in the docstring; then the entry goes.
nitpick_ignore = [
    ("py:data", "__all__"),
    ("py:data", "TRAINING"),
    ("py:data", "SPREAD"),
    ("py:data", "EVENT_STATUSES"),
    ("py:data", "airflow_provider_phota.operators.images.MAX_FAILED_JOBS"),
    ("py:func", "identity_outputs"),
    ("py:attr", "PhotaError.attempts"),
    ("py:attr", "PhotaError.retry_task"),
    ("py:class", "ConnectionFactory"),
    ("py:class", "EmulatorFactory"),
]


def resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Docstrings name our own classes the short way (``PhotaValidationError``, ``PhotaError.attempts``): resolve
    such a name when exactly one documented object of the package ends with it. A name found nowhere, or in two
    places, stays a missing reference and fails the build."""
    if node.get("refdomain") != "py" or node["reftarget"].startswith("airflow_provider_phota."):
        return None
    domain = env.get_domain("py")
    suffix = "." + node["reftarget"]
    found = [
        (name, entry)
        for name, entry in domain.objects.items()
        if name.startswith("airflow_provider_phota.") and name.endswith(suffix)
    ]
    if len(found) != 1:
        return None
    name, entry = found[0]
    from sphinx.util.nodes import make_refnode

    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


class ConnectionExtras(SphinxDirective):
    """The connection's extras as a table, generated from the provider info that the connection form uses too, so
    the page lists exactly the names, defaults and descriptions the code has."""

    def run(self) -> list[Any]:
        from docutils import nodes

        from airflow_provider_phota.get_provider_info import connection_type_info

        def row(*cells: str, literal: int = 0) -> Any:
            entries = []
            for i, text in enumerate(cells):
                content = nodes.literal(text=text) if i < literal and text != "none" else nodes.Text(text)
                entries.append(nodes.entry("", nodes.paragraph("", "", content)))
            return nodes.row("", *entries)

        fields = connection_type_info()["conn-fields"]
        body = []
        for name, field in fields.items():
            default = field["schema"].get("default")
            body.append(row(name, "none" if default is None else str(default), field["description"], literal=2))
        group = nodes.tgroup("", *[nodes.colspec(colwidth=width) for width in (2, 1, 6)], cols=3)
        group += nodes.thead("", row("extra", "default", "meaning"))
        group += nodes.tbody("", *body)
        return [nodes.table("", group)]


def setup(app: Any) -> None:
    app.connect("missing-reference", resolve_short_names)
    app.add_directive("phota-connection-extras", ConnectionExtras)
