"""An SBML Level 3 Version 1 document of an ODE model written as species with rate rules.

One compartment of size 1 holds every state as a species (concentration = amount, so d[x]/dt of the rate
rule is exactly the model's dx/dt); parameters are constant SBML parameters; inputs and other
time-varying helpers are non-constant parameters defined by assignment rules. The math comes as libsbml
ASTs (see :mod:`symode.petab.export_math`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libsbml

from symode.errors import SpecError
from symode.petab.export_math import SID_RE

LEVEL, VERSION = 3, 1


@dataclass
class SbmlModel:
    """What goes into the SBML document. Values are written with libsbml's 15 significant digits; the
    PEtab condition and parameter tables carry the exact ones."""

    id: str
    name: str
    compartment: str
    species: dict[str, float]                        # id -> initial concentration
    parameters: dict[str, float]                     # constant parameters: id -> value
    assignments: list[tuple[str, libsbml.ASTNode]] = field(default_factory=list)   # non-constant parameters
    rates: dict[str, libsbml.ASTNode] = field(default_factory=dict)               # species id -> d/dt
    names: dict[str, str] = field(default_factory=dict)                            # id -> display name


def _check(code: int, what: str) -> None:
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SpecError(f"cannot write SBML: {what} ({libsbml.OperationReturnValue_toString(code)})")


def sbml_text(m: SbmlModel) -> str:
    """The SBML document as XML text; raises SpecError when libsbml finds it inconsistent."""
    for sid in [m.id, m.compartment, *m.species, *m.parameters, *(a for a, _ in m.assignments)]:
        if not SID_RE.match(sid):
            raise SpecError(f"cannot write SBML: {sid!r} is not an SBML identifier")
    doc = libsbml.SBMLDocument(LEVEL, VERSION)
    model = doc.createModel()
    _check(model.setId(m.id), "model id")
    if m.name:
        model.setName(m.name)
    comp = model.createCompartment()
    _check(comp.setId(m.compartment), "compartment")
    comp.setSize(1.0)
    comp.setConstant(True)
    comp.setSpatialDimensions(3)
    for sid, x0 in m.species.items():
        sp = model.createSpecies()
        _check(sp.setId(sid), f"species {sid}")
        sp.setCompartment(m.compartment)
        sp.setInitialConcentration(float(x0))
        sp.setHasOnlySubstanceUnits(False)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
        if sid in m.names:
            sp.setName(m.names[sid])
    for sid, value in m.parameters.items():
        p = model.createParameter()
        _check(p.setId(sid), f"parameter {sid}")
        p.setValue(float(value))
        p.setConstant(True)
        if sid in m.names:
            p.setName(m.names[sid])
    for sid, math in m.assignments:
        p = model.createParameter()
        _check(p.setId(sid), f"parameter {sid}")
        p.setConstant(False)
        if sid in m.names:
            p.setName(m.names[sid])
        rule = model.createAssignmentRule()
        rule.setVariable(sid)
        _check(rule.setMath(math), f"assignment rule of {sid}")
    for sid, math in m.rates.items():
        rule = model.createRateRule()
        rule.setVariable(sid)
        _check(rule.setMath(math), f"rate rule of {sid}")
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    if doc.checkConsistency():
        errors = [doc.getError(i) for i in range(doc.getNumErrors())]
        severe = [e for e in errors if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
        if severe:
            raise SpecError(f"cannot write SBML: {severe[0].getMessage().strip()}")
    return libsbml.writeSBMLToString(doc)
