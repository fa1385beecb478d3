"""An import-linter contract type: a package may import only the modules on its allow-list.

import-linter's own `forbidden` contract needs every unwanted package named; the domain's rule is
the other way round ("the standard library and eventsourcing, nothing else"), so a package added
to the project later is refused without anyone remembering to list it.
"""

from __future__ import annotations

import sys
from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class AllowListContract(Contract):
    """`source_modules` import nothing but themselves, the standard library and
    `allowed_modules` (each with its submodules)."""

    type_name = "allow_list"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        sources = [m.name for m in self.source_modules]  # type: ignore[attr-defined]
        allowed = {*sources, *self.allowed_modules}  # type: ignore[misc]
        broken: list[tuple[str, str, list[int]]] = []
        for source in sources:
            for module in sorted({source, *graph.find_descendants(source)}):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    top = imported.split(".")[0]
                    if top in sys.stdlib_module_names or top in {"__future__"}:
                        continue
                    if any(imported == a or imported.startswith(a + ".") for a in allowed):
                        continue
                    details = graph.get_import_details(importer=module, imported=imported)
                    broken.append((module, imported, [d["line_number"] for d in details]))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, imported, lines in check.metadata["broken"]:
            where = ", ".join(f"l.{n}" for n in lines)
            output.print_error(f"{module} imports {imported} ({where}): not on the allow-list")
            output.new_line()
