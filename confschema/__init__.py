"""One configuration schema mechanism for agent.toml, bridge.toml and the credit-pool policy.

Each key is declared once, as a `Key` (default, check, example, help); that declaration feeds
the TOML reader, the defaults of the program's own config objects, the error messages, the docs
and generated files. Pure: no I/O, and no import of agent/ or cloud_bridge/ (both use it).
"""

from confschema.checks import (
    Check,
    Invalid,
    boolean,
    choice,
    integer,
    is_integer,
    matching,
    mqtt_url,
    number,
    path,
    text,
)
from confschema.schema import (
    REQUIRED,
    Entry,
    Fault,
    Key,
    Problem,
    Schema,
    SchemaError,
    Section,
    check_fields,
    check_value,
    describe,
    key_field,
    keys_of,
    read_document,
    read_section,
    to_toml,
    toml_value,
)

__all__ = [
    "REQUIRED",
    "Check",
    "Entry",
    "Fault",
    "Invalid",
    "Key",
    "Problem",
    "Schema",
    "SchemaError",
    "Section",
    "boolean",
    "check_fields",
    "check_value",
    "choice",
    "describe",
    "integer",
    "is_integer",
    "key_field",
    "keys_of",
    "matching",
    "mqtt_url",
    "number",
    "path",
    "read_document",
    "read_section",
    "text",
    "to_toml",
    "toml_value",
]
