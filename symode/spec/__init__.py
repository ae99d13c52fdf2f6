"""User input: YAML specs (validated, with file:line locations), rate expressions, params files, data CSVs.

Every file symode reads goes through this stage and its limits (:mod:`symode.spec.limits`). The public
API is re-exported here: ``from symode.spec import load_spec, Spec, read_csv, ...``.
"""

from symode.spec.data import Dataset, check_columns, input_matrix, read_csv
from symode.spec.loading import dump_spec, load_spec, loads_spec, spec_from_dict
from symode.spec.params import ParamValues, apply_params, load_params
from symode.spec.schema import (
    Input,
    Interaction,
    NeuralTerm,
    Noise,
    Observable,
    Parameter,
    Reactor,
    Spec,
    State,
    rewrite_neural_refs,
)
from symode.spec.yamldump import dump_yaml
from symode.spec.yamlio import Located, load_yaml, load_yaml_file

__all__ = [
    "Dataset",
    "Input",
    "Interaction",
    "Located",
    "NeuralTerm",
    "Noise",
    "Observable",
    "ParamValues",
    "Parameter",
    "Reactor",
    "Spec",
    "State",
    "apply_params",
    "check_columns",
    "dump_spec",
    "dump_yaml",
    "input_matrix",
    "load_params",
    "load_spec",
    "load_yaml",
    "load_yaml_file",
    "loads_spec",
    "read_csv",
    "rewrite_neural_refs",
    "spec_from_dict",
]
