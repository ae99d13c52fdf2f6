"""User input: YAML specs (validated, with file:line locations), rate expressions, params files, data CSVs.

Every file symode reads goes through this stage and its limits (:mod:`symode.spec.limits`). The public
API is re-exported here: ``from symode.spec import load_spec, Spec, read_csv, ...``.
"""

from symode.spec.data import Dataset, check_columns, input_matrix, negative_values, read_csv
from symode.spec.jsonio import load_data_file, load_json_file, loads_json
from symode.spec.loading import dump_spec, load_spec, loads_spec, spec_from_dict
from symode.spec.params import ParamValues, apply_params, load_params
from symode.spec.schema import (
    Input,
    Interaction,
    NeuralTerm,
    Noise,
    Observable,
    Parameter,
    Penalty,
    Reactor,
    Spec,
    State,
    rewrite_neural_refs,
)
from symode.spec.textio import read_text_file
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
    "Penalty",
    "Reactor",
    "Spec",
    "State",
    "apply_params",
    "check_columns",
    "dump_spec",
    "dump_yaml",
    "input_matrix",
    "load_data_file",
    "load_json_file",
    "load_params",
    "load_spec",
    "load_yaml",
    "load_yaml_file",
    "loads_json",
    "loads_spec",
    "negative_values",
    "read_csv",
    "read_text_file",
    "rewrite_neural_refs",
    "spec_from_dict",
]
