"""The docs contract of DESIGN §3: one Arrow schema every docs step reads and writes."""

import pyarrow as pa

DOC_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.large_string()),
    pa.field("source", pa.string()),
    pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
    pa.field("meta", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float32()),
]
DOC_SCHEMA = pa.schema(DOC_FIELDS)

REJECT_FIELDS = [
    pa.field("reason", pa.string(), nullable=False),
    pa.field("duplicate_of", pa.string()),
]


def rejected_schema(kept: pa.Schema) -> pa.Schema:
    """Rejected rows keep every column of the kept rows, plus why they were dropped."""
    return pa.schema(list(kept) + REJECT_FIELDS)


REJECTED_SCHEMA = rejected_schema(DOC_SCHEMA)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order, add (as nulls) and cast columns so that every part of a version has one schema."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
