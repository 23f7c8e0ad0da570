"""Run records: the contract between a run and everything after it (sweep skip/resume, results, report).

This package is their only reader and writer: nothing else names the file or parses it. `format` is what a
record holds (schema, statuses, the environment stamp, usability), `storage` where records live and how they
are read and written, `metrics` the declared measured columns, and `columns` the flat columns a record
becomes; `fields` reads single values out of records of any age. Every public name is importable from
`archbench.record` itself.
"""
from archbench.base.files import atomic_write_json  # the runs write their other files beside records with it

from .columns import (PROVENANCE, corruption_rows, decode_json_column, encode_json_column, hardware_label,
                      history_rows, provenance_columns, record_columns, record_hardware, record_key,
                      reliability_rows, this_machine, variant_settings)
from .fields import nested
from .format import (EXPORTED_COMMIT_ENV, FINISHED, PERCENT_CHECKED, READABLE_SCHEMAS, SCHEMA, STATUSES,
                     environment, error_text, is_diverged_reason, near_chance, new_record, now_iso, unusable_reason)
from .metrics import METRICS, Metric, evaluation_columns, metrics, register
from .storage import (RECORD_FILE, RECORD_FILENAME, CorruptFileError, find_records, load_record,
                      load_record_or_empty, parse_record_path, read_record, record_dir, record_path, seed_records,
                      write_record)

__all__ = [
    "EXPORTED_COMMIT_ENV", "FINISHED", "METRICS", "PERCENT_CHECKED", "PROVENANCE", "READABLE_SCHEMAS", "RECORD_FILE",
    "RECORD_FILENAME", "SCHEMA", "STATUSES", "CorruptFileError", "Metric", "atomic_write_json", "corruption_rows",
    "decode_json_column", "encode_json_column", "environment", "error_text", "evaluation_columns", "find_records",
    "hardware_label", "history_rows", "is_diverged_reason", "load_record", "load_record_or_empty", "metrics",
    "near_chance", "nested", "new_record", "now_iso", "parse_record_path", "provenance_columns", "read_record",
    "record_columns", "record_dir", "record_hardware", "record_key", "record_path", "register", "reliability_rows",
    "seed_records", "this_machine", "unusable_reason", "variant_settings", "write_record",
]
